"""A backend wrapper for tests that check what the generators send to the teacher."""


class Recording:
    """Wraps a backend and keeps every ``(prompt, max_new_tokens, continuation)`` it answers;
    everything else is the wrapped backend's (its ``prompt_format`` included)."""

    def __init__(self, backend):
        self.backend, self.seen = backend, []

    def __getattr__(self, name):
        return getattr(self.backend, name)

    def generate(self, prompt_list, **kw):
        texts = self.backend.generate(prompt_list, **kw)
        self.seen.extend((p, kw["max_new_tokens"], t) for p, t in zip(prompt_list, texts))
        return texts
