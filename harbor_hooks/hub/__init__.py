"""The Hugging Face Hub: pushes with retries (push.py) and the dataset card (card.py)."""
