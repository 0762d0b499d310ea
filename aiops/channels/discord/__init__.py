"""Discord: a bot's REST calls (`api`), the signed interaction requests it receives over HTTP
(`interactions`) and Discord's markdown (`markdown`). Protocol only: the channel built on these is registered by the
channel registry."""
