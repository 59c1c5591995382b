"""Task instructions the decoder tests prompt the embedded teacher with: prompts of different
lengths (left padding) whose continuations end at different steps, so rows finish early and
the batch is compacted several times."""

TASKS = [
    "Is this email spam or not spam?",
    "Reverse the word.",
    "Count the vowels in the sentence.",
    "What is the sum of the two numbers?",
    "Convert the text to upper case.",
    "Classify the topic of the news headline.",
    "Is the sentiment of the review positive or negative?",
    "Name the animal described.",
]
