"""JSON-RPC 2.0 over HTTP and WebSocket (one port), with Substrate's method names."""
