"""Photos and videos: 68-point importers, a photo's faces into a dataset, results for photos,
folders and videos, their JSON records, and ground truth beside photos.

May import: model, faces, data and the ground floor (not quality, which stands beside it).
"""
