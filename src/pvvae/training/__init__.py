"""pvvae.training"""
