"""The backend contract suite: `suite.BackendContract`, run by every backend on a tiny loaded model."""
