"""Wire models of the OpenAI-compatible routes (`agentfm.types.openai`)."""
