"""Calibration constants of the Berka generator, derived once from the real PKDD'99 files.

Every number here summarises the complete relations (account, client, disp, order, loan, card,
district) or the first 49,102 transactions (1993-01..1994-03); none is a copied record except the
77-row district table, whose demographics the generated district relation reuses. Money is in CZK.
"""

from __future__ import annotations

# fmt: off
DISTRICTS: tuple[tuple, ...] = (
    (1, "Hl.m. Praha", "Prague", 1204953, 0, 0, 0, 1, 1, 100.0, 12541, 0.29, 0.43, 167, 85677, 99107),
    (2, "Benesov", "central Bohemia", 88884, 80, 26, 6, 2, 5, 46.7, 8507, 1.67, 1.85, 132, 2159, 2674),
    (3, "Beroun", "central Bohemia", 75232, 55, 26, 4, 1, 5, 41.7, 8980, 1.95, 2.21, 111, 2824, 2813),
    (4, "Kladno", "central Bohemia", 149893, 63, 29, 6, 2, 6, 67.4, 9753, 4.64, 5.05, 109, 5244, 5892),
    (5, "Kolin", "central Bohemia", 95616, 65, 30, 4, 1, 6, 51.4, 9307, 3.85, 4.43, 118, 2616, 3040),
    (6, "Kutna Hora", "central Bohemia", 77963, 60, 23, 4, 2, 4, 51.5, 8546, 2.95, 4.02, 126, 2640, 3120),
    (7, "Melnik", "central Bohemia", 94725, 38, 28, 1, 3, 6, 63.4, 9920, 2.26, 2.87, 130, 4289, 4846),
    (8, "Mlada Boleslav", "central Bohemia", 112065, 95, 19, 7, 1, 8, 69.4, 11277, 1.25, 1.44, 127, 5179, 4987),
    (9, "Nymburk", "central Bohemia", 81344, 61, 23, 4, 2, 6, 55.3, 8899, 3.39, 3.97, 149, 2987, 2487),
    (10, "Praha - vychod", "central Bohemia", 92084, 55, 29, 4, 3, 5, 46.7, 10124, 0.56, 0.54, 141, 3810, 4316),
    (11, "Praha - zapad", "central Bohemia", 75637, 35, 36, 9, 0, 7, 36.5, 9622, 0.45, 0.59, 154, 3475, 3529),
    (12, "Pribram", "central Bohemia", 107870, 84, 29, 6, 1, 6, 58.0, 8754, 3.83, 4.31, 137, 3804, 3868),
    (13, "Rakovnik", "central Bohemia", 53921, 61, 22, 1, 1, 2, 41.3, 8598, 2.77, 3.26, 123, 1597, 1875),
    (14, "Ceske Budejovice", "south Bohemia", 177686, 69, 27, 10, 1, 9, 74.8, 10045, 1.42, 1.71, 135, 6604, 6295),
    (15, "Cesky Krumlov", "south Bohemia", 58796, 22, 16, 7, 1, 5, 51.9, 9045, 3.13, 3.6, 124, 1845, 1879),
    (16, "Jindrichuv Hradec", "south Bohemia", 93931, 74, 21, 10, 1, 8, 56.9, 8427, 1.12, 1.54, 107, 1874, 1913),
    (17, "Pelhrimov", "south Bohemia", 74062, 99, 15, 4, 2, 7, 61.4, 8114, 2.38, 2.62, 119, 1003, 1181),
    (18, "Pisek", "south Bohemia", 70699, 60, 13, 2, 1, 4, 65.3, 8968, 2.83, 3.35, 131, 1740, 1910),
    (19, "Prachatice", "south Bohemia", 51428, 50, 11, 3, 1, 4, 52.7, 8402, 3.13, 3.98, 120, 999, 1099),
    (20, "Strakonice", "south Bohemia", 70646, 94, 14, 3, 1, 4, 58.4, 8547, 2.65, 3.64, 120, 1563, 1542),
    (21, "Tabor", "south Bohemia", 103347, 87, 16, 7, 1, 7, 67.0, 9104, 1.51, 2.07, 123, 2299, 2354),
    (22, "Domazlice", "west Bohemia", 58400, 65, 16, 4, 1, 6, 52.4, 8620, 1.1, 1.25, 100, 1089, 1117),
    (23, "Cheb", "west Bohemia", 87419, 21, 11, 4, 3, 9, 85.5, 8624, 1.79, 2.66, 102, 2879, 3198),
    (24, "Karlovy Vary", "west Bohemia", 122603, 25, 21, 6, 2, 8, 80.0, 8991, 1.39, 2.01, 128, 5198, 5273),
    (25, "Klatovy", "west Bohemia", 88757, 60, 33, 3, 2, 10, 61.7, 8554, 2.47, 2.68, 113, 1822, 2218),
    (26, "Plzen - mesto", "west Bohemia", 170449, 0, 0, 0, 1, 1, 100.0, 10787, 2.64, 3.09, 131, 6041, 6261),
    (27, "Plzen - jih", "west Bohemia", 67298, 71, 19, 10, 0, 7, 43.8, 8561, 0.65, 1.29, 110, 1029, 1127),
    (28, "Plzen - sever", "west Bohemia", 72541, 66, 26, 10, 0, 8, 36.9, 8594, 1.62, 2.01, 112, 1580, 1525),
    (29, "Rokycany", "west Bohemia", 45714, 52, 10, 5, 1, 6, 55.6, 8843, 2.82, 3.6, 113, 818, 888),
    (30, "Sokolov", "west Bohemia", 94812, 15, 13, 8, 2, 10, 81.8, 9650, 3.38, 3.67, 100, 2985, 2804),
    (31, "Tachov", "west Bohemia", 51313, 34, 12, 3, 1, 4, 59.2, 8930, 3.52, 4.2, 108, 1328, 1452),
    (32, "Ceska Lipa", "north Bohemia", 105058, 32, 19, 7, 2, 10, 81.0, 9272, 2.8, 3.22, 118, 4340, 4505),
    (33, "Decin", "north Bohemia", 133777, 24, 17, 7, 3, 11, 84.7, 8705, 5.75, 7.61, 116, 4650, 4859),
    (34, "Chomutov", "north Bohemia", 125236, 28, 11, 1, 4, 5, 87.7, 9675, 6.43, 7.68, 100, 5323, 5190),
    (35, "Jablonec n. Nisou", "north Bohemia", 88768, 10, 18, 5, 1, 7, 80.5, 8867, 1.02, 1.21, 130, 3384, 3620),
    (36, "Liberec", "north Bohemia", 159617, 29, 19, 8, 1, 9, 85.2, 9198, 3.33, 4.28, 131, 5796, 6132),
    (37, "Litomerice", "north Bohemia", 114006, 71, 26, 6, 2, 9, 62.3, 9065, 4.46, 5.39, 123, 4147, 4166),
    (38, "Louny", "north Bohemia", 85852, 41, 23, 4, 2, 4, 59.8, 8965, 7.08, 8.23, 104, 2653, 2822),
    (39, "Most", "north Bohemia", 119895, 17, 4, 3, 2, 4, 89.9, 10446, 7.34, 9.4, 90, 4947, 4743),
    (40, "Teplice", "north Bohemia", 128118, 9, 16, 6, 3, 8, 85.3, 9317, 6.49, 7.07, 97, 6949, 6872),
    (41, "Usti nad Labem", "north Bohemia", 118650, 8, 8, 5, 1, 3, 85.6, 9832, 3.32, 4.48, 114, 6445, 5471),
    (42, "Havlickuv Brod", "east Bohemia", 95907, 87, 25, 5, 2, 7, 59.1, 8388, 2.41, 2.94, 87, 1658, 1668),
    (43, "Hradec Kralove", "east Bohemia", 161854, 73, 21, 6, 1, 6, 76.3, 9425, 1.72, 2.5, 125, 4085, 3891),
    (44, "Chrudim", "east Bohemia", 105606, 77, 26, 7, 2, 7, 53.0, 8254, 2.79, 3.76, 97, 2166, 2325),
    (45, "Jicin", "east Bohemia", 77917, 85, 19, 6, 1, 5, 53.5, 8390, 2.28, 2.89, 132, 2080, 2122),
    (46, "Nachod", "east Bohemia", 112709, 48, 20, 7, 3, 10, 73.5, 8369, 1.79, 2.31, 117, 2854, 2618),
    (47, "Pardubice", "east Bohemia", 162580, 83, 26, 5, 1, 6, 72.8, 9538, 1.51, 1.81, 111, 6079, 5410),
    (48, "Rychnov nad Kneznou", "east Bohemia", 78955, 50, 24, 8, 1, 9, 59.0, 9060, 1.78, 2.44, 124, 1655, 1717),
    (49, "Semily", "east Bohemia", 75685, 31, 28, 5, 1, 9, 60.8, 8208, 1.89, 2.26, 155, 1660, 2123),
    (50, "Svitavy", "east Bohemia", 102609, 75, 33, 2, 3, 6, 52.0, 8187, 4.83, 5.45, 94, 2123, 2134),
    (51, "Trutnov", "east Bohemia", 121947, 37, 28, 7, 3, 11, 70.5, 8541, 2.51, 2.97, 131, 3496, 3839),
    (52, "Usti nad Orlici", "east Bohemia", 139012, 59, 41, 8, 3, 10, 61.9, 8363, 2.52, 3.49, 108, 2564, 2799),
    (53, "Blansko", "south Moravia", 107911, 88, 33, 6, 2, 7, 50.9, 8240, 2.53, 3.56, 99, 1850, 1903),
    (54, "Brno - mesto", "south Moravia", 387570, 0, 0, 0, 1, 1, 100.0, 9897, 1.6, 1.96, 140, 18721, 18696),
    (55, "Brno - venkov", "south Moravia", 157042, 49, 70, 18, 0, 9, 33.9, 8743, 1.88, 2.43, 111, 3659, 3894),
    (56, "Breclav", "south Moravia", 124605, 11, 42, 14, 1, 8, 46.0, 8772, 4.69, 4.98, 126, 2854, 3158),
    (57, "Hodonin", "south Moravia", 161954, 21, 37, 20, 3, 8, 48.0, 8720, 3.73, 4.5, 116, 3729, 3651),
    (58, "Jihlava", "south Moravia", 109164, 98, 16, 6, 1, 4, 63.6, 8757, 3.38, 3.95, 96, 2212, 2471),
    (59, "Kromeriz", "south Moravia", 108871, 41, 29, 7, 2, 6, 62.1, 8444, 3.24, 3.47, 106, 2595, 2305),
    (60, "Prostejov", "south Moravia", 110643, 49, 41, 4, 1, 4, 51.9, 8441, 3.45, 4.48, 115, 1879, 2252),
    (61, "Trebic", "south Moravia", 117897, 139, 28, 5, 1, 6, 53.8, 8814, 4.76, 5.74, 107, 2112, 2059),
    (62, "Uherske Hradiste", "south Moravia", 145688, 22, 41, 13, 2, 5, 40.7, 8544, 1.29, 1.86, 109, 2719, 2906),
    (63, "Vyskov", "south Moravia", 86513, 38, 36, 5, 1, 5, 50.5, 8288, 3.79, 4.52, 110, 1562, 1460),
    (64, "Zlin", "south Moravia", 197099, 29, 41, 10, 2, 10, 74.7, 9624, 1.6, 2.31, 145, 4484, 4265),
    (65, "Znojmo", "south Moravia", 114200, 101, 41, 4, 1, 4, 43.7, 8403, 5.74, 5.72, 105, 2157, 2718),
    (66, "Zdar nad Sazavou", "south Moravia", 125832, 151, 41, 2, 3, 5, 48.3, 8512, 3.51, 4.12, 102, 2247, 2103),
    (67, "Bruntal", "north Moravia", 106054, 38, 25, 6, 2, 6, 63.1, 8110, 5.77, 6.55, 109, 3244, 3079),
    (68, "Frydek - Mistek", "north Moravia", 228848, 15, 40, 18, 2, 6, 57.2, 9893, 4.09, 4.72, 96, 5623, 5887),
    (69, "Jesenik", "north Moravia", 42821, 4, 13, 5, 1, 3, 48.4, 8173, None, 7.01, 124, None, 1358),
    (70, "Karvina", "north Moravia", 285387, 0, 2, 8, 5, 7, 89.9, 10177, 6.63, 7.75, 81, 9878, 10108),
    (71, "Novy Jicin", "north Moravia", 161227, 5, 35, 11, 4, 10, 69.7, 8678, 5.93, 5.57, 102, 4980, 4595),
    (72, "Olomouc", "north Moravia", 226122, 32, 50, 7, 4, 4, 62.6, 8994, 3.8, 4.79, 110, 9672, 9208),
    (73, "Opava", "north Moravia", 182027, 17, 49, 12, 2, 7, 56.4, 8746, 3.33, 3.74, 90, 4355, 4433),
    (74, "Ostrava - mesto", "north Moravia", 323870, 0, 0, 0, 1, 1, 100.0, 10673, 4.75, 5.44, 100, 18782, 18347),
    (75, "Prerov", "north Moravia", 138032, 67, 30, 4, 2, 5, 64.6, 8819, 5.38, 5.66, 99, 4063, 4505),
    (76, "Sumperk", "north Moravia", 127369, 31, 32, 13, 2, 7, 51.2, 8369, 4.73, 5.88, 107, 3736, 2807),
    (77, "Vsetin", "north Moravia", 148545, 8, 35, 12, 3, 4, 53.5, 8909, 4.01, 5.56, 113, 3460, 3590),
)
"""district_id, A2 name, A3 region, A4..A16 (A12 and A15 missing for district 69), as district.asc."""

DISTRICT_ACCOUNTS: tuple[int, ...] = (
    554, 42, 50, 48, 65, 48, 44, 56, 46, 48, 48, 42, 37, 41, 50, 52, 42, 46, 55, 36, 48, 36, 50, 42, 42, 45,
    39, 45, 43, 38, 50, 48, 49, 39, 43, 57, 37, 54, 41, 44, 45, 48, 49, 50, 41, 59, 53, 53, 37, 48, 49, 57,
    50, 128, 53, 44, 41, 32, 57, 51, 45, 44, 49, 92, 39, 53, 43, 83, 48, 152, 42, 88, 56, 135, 51, 55, 40,
)
"""Accounts per district (district_id 1..77) in account.asc."""

OPENINGS_FIRST_YEAR = 1993
OPENINGS_PER_MONTH: tuple[int, ...] = (
    96, 98, 104, 77, 91, 88, 99, 102, 103, 75, 115, 91,
    24, 34, 32, 41, 55, 35, 31, 37, 40, 47, 28, 35,
    64, 44, 48, 52, 50, 57, 48, 58, 60, 65, 65, 50,
    106, 104, 124, 101, 91, 113, 137, 133, 108, 115, 106, 125,
    66, 79, 65, 82, 83, 74, 79, 83, 83, 78, 62, 64,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
)
"""Accounts opened per calendar month from 1993-01 to 1998-12 (none in 1998)."""

BIRTH_FIRST_YEAR = 1911
BIRTH_YEAR_CLIENTS: tuple[int, ...] = (
    2, 1, 3, 4, 4, 3, 5, 45, 47, 55, 42, 46, 59, 46, 56, 36, 50, 56, 41, 54, 56, 52, 55, 57, 69, 69, 66,
    71, 104, 104, 93, 119, 101, 92, 102, 102, 91, 105, 83, 87, 100, 115, 105, 89, 85, 79, 114, 83, 119,
    82, 107, 94, 100, 101, 96, 89, 96, 100, 94, 108, 108, 85, 85, 83, 104, 118, 107, 116, 108, 94, 30, 33,
    3, 1, 3, 1, 1,
)
"""Clients per birth year from 1911 to 1987."""

FEMALE_SHARE = 0.4926
CLIENT_IN_ACCOUNT_DISTRICT = 0.91
DISPONENT_SHARE = 869 / 4500

FREQUENCIES: tuple[str, ...] = ("POPLATEK MESICNE", "POPLATEK TYDNE", "POPLATEK PO OBRATU")
FREQUENCY_SHARES: tuple[float, ...] = (0.926, 0.053333, 0.020667)
STATEMENT_FEES: tuple[float, ...] = (14.6, 30.0, 100.0)
"""Monthly SLUZBY fee per frequency."""
STATEMENT_FEE_SHARE = 0.96
"""Share of months with a statement fee once it has started."""

ACTIVATION_AGES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
ACTIVATION_SHARES: tuple[float, ...] = (0.024, 0.047, 0.031, 0.317, 0.555, 0.015, 0.011)
"""Months from opening until standing orders and statement fees start."""

ORDERS_PER_ACCOUNT: tuple[float, ...] = (1003, 2054, 859, 370, 198, 16)
"""Accounts with 0..5 standing orders other than loan repayments."""
ORDER_K_SYMBOLS: tuple[str | None, ...] = ("SIPO", "POJISTNE", "LEASING", None)
ORDER_K_SHARES: tuple[float, ...] = (3502, 532, 341, 1379)
LATE_ORDER_SHARE = 0.15
LATE_ORDER_DELAY = (1, 24)
"""This share of standing orders starts 1..24 months after the account's first ones."""
ORDER_DAYS = (5, 14)
"""Standing orders are paid on one day of the month between these, inclusive."""

ORDER_AMOUNTS: dict[str | None, tuple[float, ...]] = {
    "SIPO": (
        1.0, 480.2, 970.4, 1431.3, 1747.2, 2003.2, 2156.0, 2344.7, 2650.8, 2943.4, 3189.5, 3452.6, 3825.6,
        4273.6, 4879.1, 5529.8, 6354.4, 7189.5, 8195.2, 9545.8, 14882.0,
    ),
    "POJISTNE": (
        1.0, 17.0, 50.1, 73.3, 121.4, 176.0, 253.0, 330.8, 414.4, 511.0, 629.0, 743.1, 883.6, 1032.2,
        1265.1, 1629.5, 2188.8, 2681.9, 3533.0, 5092.4, 12504.0,
    ),
    "LEASING": (
        397.0, 658.0, 894.0, 1068.0, 1185.0, 1278.5, 1408.0, 1562.1, 1657.7, 1791.5, 1951.3, 2121.0,
        2342.0, 2520.1, 2682.3, 3072.1, 3292.0, 3658.3, 4187.0, 4560.8, 4975.2,
    ),
    None: (
        1.0, 46.7, 127.0, 215.1, 334.2, 475.0, 641.0, 787.6, 931.4, 1105.5, 1339.0, 1524.8, 1782.0,
        2067.4, 2321.8, 2867.0, 3384.0, 4084.9, 4997.2, 6368.9, 12925.0,
    ),
}
"""Order amount at the quantiles 0, 0.05, .., 1 per order k_symbol (as are all quantile tables here)."""

LOAN_FIRST_YEAR = 1993
LOAN_SHARE_BY_OPENING_YEAR: tuple[float, ...] = (0.132, 0.148, 0.168, 0.172, 0.175)
"""Share of accounts opened in 1993..1997 that take a loan (before the data ends cuts some off)."""
LOAN_GAP_DAYS = (102, 697)
LOAN_DURATIONS: tuple[int, ...] = (12, 24, 36, 48, 60)
LOAN_DURATION_SHARES: tuple[float, ...] = (131, 138, 130, 138, 145)
LOAN_PAYMENTS: tuple[float, ...] = (
    304.0, 964.0, 1452.0, 1820.0, 2059.0, 2477.0, 2769.0, 3100.0, 3314.0, 3632.0, 3934.0, 4241.0, 4540.0,
    4898.0, 5354.0, 5814.0, 6365.0, 6874.0, 7370.0, 8048.0, 9910.0,
)
LOAN_PAID_UP_SHARE = 203 / 234
"""Finished loans that were paid (A; else B)."""
LOAN_RUNNING_OK_SHARE = 403 / 448
"""Running loans without arrears (C; else D)."""

CARD_MIN_AGE_MONTHS = 7
CARD_HAZARD_FIRST_YEAR = 1993
CARD_MONTHLY_HAZARD: tuple[float, ...] = (0.00063, 0.00155, 0.0031, 0.0041, 0.0058, 0.0091)
"""Chance per month that an account without a card gets one, per calendar year 1993..1998."""
CARD_YOUNG_AGE = 20
CARD_YOUNG_FACTOR = 2.3
"""Owners aged CARD_YOUNG_AGE or less get cards this much more often, and those cards are junior."""
GOLD_SHARE = 88 / 747
CARD_WITHDRAWALS_PER_MONTH = 0.6
CARD_WITHDRAWAL_AMOUNTS = (400.0, 4000.0)

PENSION_BIRTH_YEAR = 1938
PENSION_SHARE_OLD = 0.82
SALARY_SHARE_YOUNG = 0.25
"""Owners born by PENSION_BIRTH_YEAR mostly draw a pension; of the others this share a salary."""
PENSIONS: tuple[float, ...] = (
    4019.0, 4202.0, 4277.0, 4398.0, 4523.0, 4652.0, 4877.0, 5062.0, 5221.0, 5426.0, 5611.0, 5800.0,
    5921.0, 6060.0, 6182.0, 6296.0, 6403.0, 6540.0, 6667.0, 6848.0, 6987.0,
)
SALARIES: tuple[float, ...] = (
    2900.0, 3008.0, 3064.0, 3170.0, 3222.0, 3271.0, 3334.0, 3394.0, 3459.0, 3542.0, 3893.0, 11609.0,
    15688.0, 19982.0, 23677.0, 26094.0, 31806.0, 36104.0, 40813.0, 45355.0, 49765.0,
)
INCOME_START_SAME_MONTH = 0.25
"""Share of salaries and pensions whose first credit falls in the month of opening."""

INITIAL_DEPOSITS: tuple[float, ...] = (200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100)
DEPOSIT_LEVELS: tuple[float, ...] = (
    300.0, 1660.0, 3110.0, 4596.0, 5549.0, 7039.0, 8803.0, 10330.0, 11940.0, 13638.0, 15080.0, 16378.0,
    17569.0, 18813.0, 20112.0, 21231.0, 22210.0, 23474.0, 24372.0, 27940.0, 38990.0,
)
"""Typical cash deposit (VKLAD) of an account living on cash."""
DEPOSITS_PER_MONTH = 1.1
SECOND_MONTH_DEPOSITS = 0.4
"""Extra cash deposits in the month after opening, as accounts are funded."""
MIN_DEPOSITS_PER_MONTH = 0.6
OTHER_DEPOSITS_PER_MONTH = 0.03
DEPOSIT_SPREAD = 0.45
SMALL_DEPOSIT_SHARE = 0.16
DEPOSIT_ROUNDING = ((100, 0.36), (10, 0.1))
"""Deposits are whole hundreds of crowns in 36% of cases, else whole tens in 10%, else whole crowns."""
REGULAR_DEPOSIT_SHARE = 0.85
REGULAR_DEPOSIT_SPREAD = 0.2
"""Deposits come as one regular monthly deposit on a fixed day in this share of months, plus others."""

WITHDRAWALS_PER_MONTH = 1.35
WITHDRAWAL_AGE_RAMP: tuple[float, ...] = (0.0, 0.2, 0.45, 0.6, 0.8)
"""Cash withdrawals relative to a mature account in the first months after opening."""
WITHDRAWAL_SEASON: tuple[float, ...] = (2.5, 0.8, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.4)
ROUND_HUNDRED_SHARE = 0.77
BALANCE_TARGET = 35_000.0
BALANCE_TARGET_ELASTICITY = 0.3
BALANCE_TARGET_SPREAD = 0.25
"""Accounts keep about BALANCE_TARGET x (expected credits / median)^elasticity, spread lognormally."""
WITHDRAWAL_RATE_ELASTICITY = 0.8
"""Accounts with more left after standing orders withdraw cash more often (and in larger amounts)."""
BALANCE_PULL = 1.0
"""Cash withdrawals grow by exp(BALANCE_PULL x relative excess of the balance over its target)."""
BALANCE_PULL_LIMITS = (0.25, 4.0)
WITHDRAWAL_SPREAD = 0.8
MIN_DISPOSABLE_SHARE = 0.15
WEALTH_CORRELATION = 0.8
"""Rank correlation of order amounts and loan repayments with the account's income."""
AFFORDABLE_SHARE = 0.6
"""Standing orders and loans take at most this share of an account's expected credits."""

TYPE_VYBER_PER_MONTH = 0.32
TYPE_VYBER_RESERVE = 0.5
"""Withdrawals of type VYBER happen where the largest would leave this share of the target balance."""
WITHDRAWAL_RESERVE = 0.3
"""Cash withdrawals leave at least this share of the target balance."""
TYPE_VYBER_AMOUNTS: tuple[float, ...] = (
    2025.0, 3116.0, 3754.0, 4655.0, 5438.0, 6363.0, 7539.0, 8490.0, 9746.0, 11104.0, 12183.0, 13145.0,
    13939.0, 14978.0, 16079.0, 17516.0, 19169.0, 20150.0, 21362.0, 22886.0, 24743.0,
)

INTEREST_RATE = 0.0047
INTEREST_FIRST_MONTH_LAST_DAY = 12
INTEREST_YOUNG_AGE = 4
INTEREST_YOUNG_SHARE = 0.83
"""Accounts opened by the first day above get interest in their first month; in the months up to
INTEREST_YOUNG_AGE after opening, interest is credited in INTEREST_YOUNG_SHARE of months."""
SANCTION_RATE = 0.003

BANKS: tuple[str, ...] = ("AB", "CD", "EF", "GH", "IJ", "KL", "MN", "OP", "QR", "ST", "UV", "WX", "YZ")
ACCOUNT_NUMBER_LIMIT = 100_000_000
# fmt: on
