"""The queue's use cases, one mixin per concept, composed by ``services.queue.app.QueueApp``."""
