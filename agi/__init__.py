"""The FastAGI gate: the same decision as the ARI gate, for AGI dialplans."""
