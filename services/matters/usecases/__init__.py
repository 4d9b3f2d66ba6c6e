"""The use cases of matters, by concept; ``app.MattersApp`` composes them."""
