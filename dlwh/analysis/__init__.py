"""dlwh.analysis: learn time, power and energy from the warehouse, and predict them.

Modules (scikit-learn, statsmodels, scipy and matplotlib are imported only inside functions):

* ``data``      the training_data view as a DataFrame; GPU names; limits; MAPE / R²
* ``features``  model features and the training ranges predict warns against
* ``physics``   the power-limit model (phases, cap, clock-power curve), fitted per GPU
* ``learners``  gbr, poly, ols, physics behind one interface, with 90 % intervals
* ``cv``        cross-validation splits and out-of-fold predictions
* ``fit``       dlwh fit: score, fit and store models in fitted_models
* ``predict``   dlwh predict: read stored models back, predict at power limits
* ``simulate``  dlwh simulate: energy budgets, cost, time to accuracy, emissions
* ``plots``     matplotlib figures; ``report`` the self-contained HTML page
"""
