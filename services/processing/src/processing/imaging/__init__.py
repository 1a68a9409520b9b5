"""Pure numpy/scipy imaging core: finders, CTF, motion, ice and rendering (no I/O)."""
