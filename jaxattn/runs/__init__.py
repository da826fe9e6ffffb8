"""Run directories: atomic files, the lock that gives a directory one writer at a time."""
