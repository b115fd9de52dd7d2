"""PyTorch, the reference side: every comparison's weights are made and checked here."""
