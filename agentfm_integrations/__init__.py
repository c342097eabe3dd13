"""AgentFM integrations."""
