"""The federated-learning coordinator: announces rounds, decrypts only aggregates, signs global models."""
