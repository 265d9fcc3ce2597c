"""BRD Edge runtime: segmentation on a device with numpy, OpenCV and one backend (no torch)."""
