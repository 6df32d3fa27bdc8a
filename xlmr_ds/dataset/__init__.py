"""The online dataset: the indexed format (reader and writer), the manifest, blocks of whole lines, the block
index cache, alpha blending into one global sample order, and the resumable training loader. Uses no
torch.distributed collectives beyond the job barrier of the block index; masking is kernels' reference rule."""
