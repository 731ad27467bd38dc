-- dlwh warehouse, schema version 9: what one training step of a model is made of, per layer type.
--
-- One row per (model, input_desc, category) for models profiled by dlwh.models.structure (forward,
-- loss and backward on PyTorch's meta device). The zoo's rows ship with the package
-- (dlwh/models/zoo_structure.csv) and are read from there; this table holds the user's own models
-- (dlwh.models.structure.store_structure) and wins over the shipped rows.
-- category: conv, depthwise, linear, attention, norm, elementwise, pooling, embedding.
-- macs: multiply-accumulates of matrix operators; elems: tensor elements read + written; both split
-- into a part per sample and a fixed part per step (weights, weight gradients). kernels: operator
-- calls per step. params: parameters of that category's modules.

CREATE TABLE IF NOT EXISTS model_structure (
    model             VARCHAR NOT NULL,
    input_desc        VARCHAR NOT NULL,
    category          VARCHAR NOT NULL,
    macs_per_sample   BIGINT NOT NULL,
    macs_fixed        BIGINT NOT NULL,
    elems_per_sample  BIGINT NOT NULL,
    elems_fixed       BIGINT NOT NULL,
    kernels           INTEGER NOT NULL,
    params            BIGINT NOT NULL,
    torch_version     VARCHAR,
    profiled_at       TIMESTAMP,            -- UTC
    PRIMARY KEY (model, input_desc, category)
);
