"""pvvae.data"""
