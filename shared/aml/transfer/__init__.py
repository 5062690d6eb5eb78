"""Transfer learning with PyTorch (assignment 5): the training loop (:mod:`~aml.transfer.training`), pretrained
CNNs on photos (:mod:`~aml.transfer.vision`) and a fine-tuned transformer on tweets (:mod:`~aml.transfer.tweets`)."""
