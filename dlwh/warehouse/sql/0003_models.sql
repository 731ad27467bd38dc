-- dlwh warehouse, schema version 3: model complexity (MACs and parameters) and its link to runs.
--
-- MACs are multiply-accumulates of the MAC operators (convolution, linear, matmul family) counted by
-- fvcore on one forward pass; counts are per sample unless the column says total. Model names are the
-- zoo's canonical names (resnet50, shufflenet_v2_x1_0, bert_base, ...) or, for imported models, the
-- name lower-cased. input_desc is '3x224x224' (image C x H x W) or 'seq128' (tokens).
-- zoo_models and model_aliases are (re)filled from the package by dlwh.models.seed_zoo_complexity
-- each time the warehouse is opened read-write.

CREATE TABLE IF NOT EXISTS zoo_models (
    model           VARCHAR PRIMARY KEY,   -- canonical name
    kind            VARCHAR NOT NULL,      -- 'vision' or 'text'
    default_input   VARCHAR NOT NULL,      -- input_desc the shipped counts are for
    description     VARCHAR
);

-- alias_key: the name lower-cased with everything but [a-z0-9] removed ('ResNet-50' -> 'resnet50').
CREATE TABLE IF NOT EXISTS model_aliases (
    alias_key       VARCHAR PRIMARY KEY,
    model           VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS model_complexity (
    model                   VARCHAR NOT NULL,
    input_desc              VARCHAR NOT NULL,
    batch_size              INTEGER NOT NULL,   -- batch the count was taken at (1 for zoo/import rows)
    macs_per_sample         BIGINT NOT NULL,
    macs_total              BIGINT NOT NULL,    -- macs_per_sample x batch_size
    params                  BIGINT,
    source                  VARCHAR NOT NULL CHECK (source IN ('zoo', 'fvcore', 'import')),
    fvcore_version          VARCHAR,            -- NULL for imported rows
    fvcore_flops_per_sample BIGINT,             -- fvcore's whole total (norms, pooling included)
    unsupported_ops         JSON,               -- {"aten::add": 16, ...}: operators fvcore did not count
    profiled_at             TIMESTAMP,          -- UTC; NULL for rows from the shipped zoo table
    PRIMARY KEY (model, input_desc, batch_size)
);

-- Per-operator breakdown of the latest profile of (model, input_desc); macs per sample.
CREATE TABLE IF NOT EXISTS model_ops (
    model           VARCHAR NOT NULL,
    input_desc      VARCHAR NOT NULL,
    operator        VARCHAR NOT NULL,      -- fvcore's name: conv, linear, matmul, batch_norm, ...
    macs            BIGINT NOT NULL,       -- per sample
    is_mac          BOOLEAN NOT NULL,      -- counted in macs_per_sample (false: norms, pooling)
    PRIMARY KEY (model, input_desc, operator)
);

-- Per-module breakdown of the latest profile: each module's own MACs (per sample, MAC operators it runs
-- outside its children) and own parameters; the rows of one model add up to its totals.
CREATE TABLE IF NOT EXISTS model_layers (
    model           VARCHAR NOT NULL,
    input_desc      VARCHAR NOT NULL,
    layer           VARCHAR NOT NULL,      -- dotted module path, e.g. layer1.0.conv1
    layer_type      VARCHAR,               -- Conv2d, Linear, BatchNorm2d, ...
    macs            BIGINT NOT NULL,       -- per sample
    params          BIGINT NOT NULL,
    PRIMARY KEY (model, input_desc, layer)
);

-- Runs joined to the complexity of their model (run tag 'model', any alias; tag 'batch_size').
-- One row per run whose model has a count. Which count: the one at the run's 'input' tag when it has
-- one and it was counted, else the model's default input, else any; then the run's batch size, then a
-- fresh profile or import before the shipped table, then the newest.
CREATE OR REPLACE VIEW run_complexity AS
WITH tagged AS (
    SELECT t.run_id,
           coalesce(a.model, lower(trim(t.value))) AS model,
           try_cast(b.value AS INTEGER) AS batch_size,
           regexp_replace(lower(i.value), '[\s()]', '', 'g') AS input_tag
    FROM run_tags t
    JOIN runs r ON r.run_id = t.run_id
    LEFT JOIN model_aliases a ON a.alias_key = regexp_replace(lower(t.value), '[^a-z0-9]', '', 'g')
    LEFT JOIN run_tags b ON b.run_id = t.run_id AND b.key = 'batch_size'
    LEFT JOIN run_tags i ON i.run_id = t.run_id AND i.key = 'input'
    WHERE t.key = 'model'
),
ranked AS (
    SELECT tg.run_id, tg.model, tg.batch_size, c.input_desc, c.macs_per_sample, c.params,
           c.source AS complexity_source,
           row_number() OVER (
               PARTITION BY tg.run_id
               ORDER BY (c.input_desc = tg.input_tag) IS TRUE DESC,
                        (c.input_desc = z.default_input) IS TRUE DESC,
                        (c.batch_size = tg.batch_size) IS TRUE DESC,
                        CASE c.source WHEN 'fvcore' THEN 0 WHEN 'import' THEN 1 ELSE 2 END,
                        c.profiled_at DESC NULLS LAST,
                        c.batch_size
           ) AS rank
    FROM tagged tg
    JOIN model_complexity c ON c.model = tg.model
    LEFT JOIN zoo_models z ON z.model = tg.model
)
SELECT run_id, model, batch_size, macs_per_sample, params,
       macs_per_sample * batch_size AS macs_per_batch,
       input_desc, complexity_source
FROM ranked
WHERE rank = 1;
