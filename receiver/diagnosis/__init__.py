"""Alert diagnosis: a fixed, validated ops schema produced by an LLM or by built-in rules."""
