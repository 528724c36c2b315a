"""Running a sweep: open, work, close; workers, one trial in both stores, outcomes, signals, local launch."""
