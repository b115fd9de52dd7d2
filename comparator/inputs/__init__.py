"""What a comparison starts from: weights (sources, checkpoints), images and the batch.
`prepare` puts them together; the other modules each own one kind of input."""
