"""The layer above the server, the client and the monitor: processes to test, measure and demonstrate them."""
