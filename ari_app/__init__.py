"""The ARI gate: an asyncio ARI application that decides every call put in Stasis."""
