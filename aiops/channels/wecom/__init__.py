"""WeCom (企业微信): the self-built app (`api`, with its encrypted callbacks in `crypto` and `callback`) and the
group robot (`robot`), sharing one markdown dialect (`markdown`) and one reading of the platform's error codes
(`errors`). Protocol only: the channel built on these is registered by the channel registry."""
