"""The queues work is routed to, by kind of resource it needs."""

from __future__ import annotations

import enum


class Queue(enum.StrEnum):
    """generation waits on the teacher (network or GPU); execution runs programs in the sandbox
    (CPU); verification checks answers and stores labels (CPU, light); training fine-tunes students
    (GPU, trainer/tasks.py). Each scales on its own."""

    generation = "generation"
    execution = "execution"
    verification = "verification"
    training = "training"
