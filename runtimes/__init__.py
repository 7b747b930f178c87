"""dwpose_edge.runtimes"""
