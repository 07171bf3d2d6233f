"""The service on Ray Serve: the HTTP ingress and its protocols (voicestack's API, OpenAI's
speech API, the WebSocket for text as it is written, the listening page), the composer that
drives one voice's block deployments, the leaf deployments that run the blocks, the Wyoming
server, metrics, and the launcher behind `make serve`."""
