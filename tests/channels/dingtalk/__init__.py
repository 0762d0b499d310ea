"""The DingTalk app channel's chat: messages to its robot over the Stream connection, and its replies."""
