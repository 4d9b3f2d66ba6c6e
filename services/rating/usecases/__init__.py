"""The rating use cases by concept, composed by ``services/rating/app.py``."""
