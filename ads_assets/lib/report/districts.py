"""Where the 77 districts of the Berka `district` relation lie: the latitude and longitude of each district's town.

`districts.csv`, shipped with the package, holds per district_id (A1) the relation's name (A2), the town the
point stands for (the district's seat, or its largest town for the districts around Prague, Plzen and Brno
that are run from the city itself) and the town's latitude and longitude in degrees, to about 0.01°.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

DISTRICTS_FILE = "districts.csv"
CZECH_BOUNDS = ((48.55, 51.06), (12.09, 18.86))
"""The Czech Republic's bounding box: (south, north) latitudes and (west, east) longitudes in degrees."""
MEAN_LATITUDE = 49.8
"""The latitude at which a map of the districts has equal distances along both axes."""


def district_towns() -> pd.DataFrame:
    """district_id, name, town, latitude and longitude of every district, by district_id."""
    with files(__package__).joinpath(DISTRICTS_FILE).open(encoding="utf-8") as file:
        towns = pd.read_csv(file, dtype={"district_id": "int64", "name": str, "town": str})
    return towns.sort_values("district_id", ignore_index=True)
