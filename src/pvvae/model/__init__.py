"""pvvae.model"""
