"""Planted-defect variants of the workflows: each directory must fail the acceptance run with its defect named."""
