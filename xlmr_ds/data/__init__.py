"""From raw multilingual text to masked training batches: tokenizer, binarization, indexed datasets,
alpha-sampled blending, packing and MLM masking. The format code here uses no torch.distributed."""
