"""Region-guided rendering: sub-prompt bags (pure) and attention processors (torch, imported when used)."""
