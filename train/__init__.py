"""dwpose_edge.train"""
