"""Carbon: grid carbon intensity (gCO2eq/kWh) by zone and time, PUE, and emissions of runs and spans.

Public entry points:
- ``dlwh.carbon.intensity.resolve_intensity(con, zone, intensity_g_per_kwh, at)`` → (gCO2eq/kWh, source)
- ``dlwh.carbon.intensity.resolve_pue(con, pue, run_id)`` → (PUE, source); ``DEFAULT_PUE`` = 1.0
- ``dlwh.carbon.intensity.emissions_g(energy_kwh, intensity_g_per_kwh, pue)``
- ``dlwh.carbon.emissions.run_emissions(con, ...)`` / ``span_emissions(con, ...)``
- ``dlwh.carbon.electricitymaps.fetch(...)`` (the Electricity Maps v3 API)
- ``dlwh.carbon.schedule.best_window(con, zone, energy_kwh, duration_s, window_start, window_end, step)``
"""
