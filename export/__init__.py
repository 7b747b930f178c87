"""dwpose_edge.export"""
