"""The LLM side of diagnosis: the chat client, the prompt, the answer's schema and the investigation loop."""
