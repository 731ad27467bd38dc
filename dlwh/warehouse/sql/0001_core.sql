-- dlwh warehouse, schema version 1: the core tables.
-- All timestamps are TIMESTAMP values in UTC (no zone attached); units live in column names.

CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,   -- from run.json, or '<file stem>-<sha8>' for a loose file
    host            VARCHAR,
    start_ts        TIMESTAMP,             -- UTC
    end_ts          TIMESTAMP,             -- UTC
    command         VARCHAR,               -- the command line, as one string
    exit_code       INTEGER,
    timezone        VARCHAR,               -- the recording host's zone (IANA name) where known
    source          VARCHAR NOT NULL,      -- 'manifest' (a dlwh run directory) or 'file' (a loose trace)
    manifest_json   JSON,                  -- the whole run.json, for fields without a column
    file_sha256     VARCHAR                -- the file that created this row
);

CREATE TABLE IF NOT EXISTS run_tags (
    run_id   VARCHAR NOT NULL,
    key      VARCHAR NOT NULL,             -- model, batch_size, power_limit_w, precision, epochs, ...
    value    VARCHAR,
    file_sha256 VARCHAR,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE IF NOT EXISTS files (
    path          VARCHAR PRIMARY KEY,     -- absolute path of the ingested file
    sha256        VARCHAR NOT NULL,
    size_bytes    BIGINT,
    format        VARCHAR NOT NULL,        -- e.g. nvidia-smi-query, perf-stat-csv, dlwh-manifest
    run_id        VARCHAR,
    rows_loaded   BIGINT NOT NULL,         -- samples + counters + spans + other rows from this file
    ingested_at   TIMESTAMP NOT NULL,      -- UTC
    outcome       VARCHAR NOT NULL,        -- 'loaded' or 'loaded-with-warnings'
    message       VARCHAR                  -- notes: the time zone used, dropped lines, ...
);

CREATE TABLE IF NOT EXISTS sensors (
    sensor_id     VARCHAR PRIMARY KEY,     -- '<sha256[:16]>:<key within the file>'
    run_id        VARCHAR NOT NULL,
    file_sha256   VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,        -- gpu, cpu_package, cpu_cores, cpu_gpu, dram, psys, node, soc, cpu, ane
    name          VARCHAR,                 -- human label, e.g. 'GPU 0 NVIDIA H200' or 'package-0'
    device_index  INTEGER,
    device_uuid   VARCHAR,
    device_name   VARCHAR,
    tool          VARCHAR NOT NULL         -- nvml, nvidia-smi, nvidia-smi-dmon, perf, ipmitool, powermetrics, ...
);

-- One reading per row. metric names are fixed (see README: power, power_instant, energy, energy_total,
-- power_limit, clock_sm, utilization_gpu, temperature_gpu, memory_used, ...), unit says the unit.
-- duration_s is set for readings that cover an interval ending at ts (perf RAPL energy per interval);
-- such power readings are placed at the interval's midpoint.
CREATE TABLE IF NOT EXISTS samples (
    sensor_id     VARCHAR NOT NULL,
    ts            TIMESTAMP NOT NULL,      -- UTC
    metric        VARCHAR NOT NULL,
    unit          VARCHAR NOT NULL,        -- W, J, MHz, %, C, MiB, rpm, ...
    value         DOUBLE,                  -- NULL for [N/A], [Not Supported], '-'
    duration_s    DOUBLE,
    file_sha256   VARCHAR NOT NULL
);

-- perf PMU (and other) events per interval; energy events also go to samples.
CREATE TABLE IF NOT EXISTS counters (
    run_id        VARCHAR NOT NULL,
    file_sha256   VARCHAR NOT NULL,
    perf_run      INTEGER NOT NULL,        -- several perf runs appended to one file stay apart (0, 1, ...)
    ts            TIMESTAMP,               -- UTC end of the interval (NULL where the file has no anchor)
    interval_s    DOUBLE,                  -- length of the interval, or the whole run without -I
    cpu           VARCHAR,                 -- CPU or socket for per-cpu/per-socket modes
    pmu           VARCHAR,                 -- cpu_core, cpu_atom, power, ... (NULL for plain events)
    event         VARCHAR NOT NULL,        -- full event name as perf prints it
    value         DOUBLE,                  -- NULL when <not counted> / <not supported>
    unit          VARCHAR,
    reason        VARCHAR,                 -- 'not counted' / 'not supported'
    run_time_ns   BIGINT,                  -- counter running time where printed
    enabled_pct   DOUBLE                   -- percentage of time the counter ran (multiplexing)
);

CREATE TABLE IF NOT EXISTS spans (
    run_id        VARCHAR NOT NULL,
    span_id       VARCHAR NOT NULL,
    parent_id     VARCHAR,
    kind          VARCHAR NOT NULL,        -- epoch, step, phase, layer (or a user kind)
    name          VARCHAR NOT NULL,
    start_ts      TIMESTAMP NOT NULL,      -- UTC
    end_ts        TIMESTAMP NOT NULL,      -- UTC
    start_mono_ns BIGINT,
    end_mono_ns   BIGINT,
    attrs         JSON,
    file_sha256   VARCHAR NOT NULL,
    PRIMARY KEY (run_id, span_id)
);

