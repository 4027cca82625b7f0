"""pvvae.cli"""
