"""dwpose_edge.bench"""
