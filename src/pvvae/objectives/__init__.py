"""pvvae.objectives"""
