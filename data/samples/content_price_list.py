"""Rows of the 2024 fleet parts and service price list, as data (rendered by generate.py).

Each part lists its price in pounds and its lead time in working days for each of the three
e-bike models; ``None`` means the part does not exist for that model. The table is long on
purpose: rendered as a PDF it continues over several pages with the header row repeated.
"""

TITLE = "Fleet Parts and Service Price List 2024"
INTRO = [
    "This price list applies to partner workshops and corporate fleet customers that maintain Larkspur "
    "e-bikes under a Larkspur Fleet Care agreement. Prices are in pounds sterling, exclude VAT and are valid "
    "for orders placed between 1 January and 31 December 2024.",
    "Orders are placed through the partner portal. Orders with a value above £500 are delivered free of "
    "charge; smaller orders carry a delivery charge of £18.50. Parts marked with a lead time of 1 day are "
    "held in stock at the Northgate depot and ship on the next working day if ordered before 14:00.",
]
NOTES = [
    "Battery packs are dangerous goods. They are shipped only by Larkspur's own vans or an approved "
    "dangerous-goods courier and must be received by a person trained in battery handling.",
    "Returned parts are accepted within 30 days if unused and in the original packaging. A restocking fee "
    "of 15% applies to returned battery packs and motors.",
    "Labour rates apply to work carried out by Larkspur technicians at a Larkspur depot. On-site work at a "
    "customer location is charged with an additional call-out fee of £65 per visit.",
    "Questions about this price list: fleetcare@larkspur.example or extension 5050.",
]
MODELS = [("C3", "Commuter C3"), ("K2", "Cargo K2"), ("S1", "Step-Through S1")]

# (code, description, {model: (price, lead_days) or None})
PARTS = [
    ("101", "Battery pack 36V", {"C3": (389.00, 5), "K2": None, "S1": (389.00, 5)}),
    ("102", "Battery pack 48V high capacity", {"C3": None, "K2": (529.00, 7), "S1": None}),
    ("103", "Battery charger 4A", {"C3": (64.00, 1), "K2": (79.00, 1), "S1": (64.00, 1)}),
    ("104", "Battery lock and key set", {"C3": (22.50, 1), "K2": (22.50, 1), "S1": (22.50, 1)}),
    ("110", "Rear hub motor 250W", {"C3": (312.00, 10), "K2": None, "S1": (298.00, 10)}),
    ("111", "Mid-drive motor 250W", {"C3": None, "K2": (684.00, 15), "S1": None}),
    ("112", "Motor controller", {"C3": (145.00, 5), "K2": (172.00, 7), "S1": (145.00, 5)}),
    ("113", "Display unit with handlebar mount", {"C3": (96.00, 3), "K2": (96.00, 3), "S1": (88.00, 3)}),
    ("114", "Main wiring loom", {"C3": (41.00, 3), "K2": (57.00, 3), "S1": (41.00, 3)}),
    ("120", "Hydraulic disc brake pads (pair)", {"C3": (14.90, 1), "K2": (16.40, 1), "S1": (14.90, 1)}),
    ("121", "Brake rotor 180mm", {"C3": (21.00, 1), "K2": (24.00, 1), "S1": (21.00, 1)}),
    ("122", "Complete brake caliper", {"C3": (58.00, 3), "K2": (67.00, 3), "S1": (58.00, 3)}),
    ("123", "Brake lever with cut-off sensor", {"C3": (33.00, 3), "K2": (33.00, 3), "S1": (33.00, 3)}),
    ("130", "Tyre 700x40c puncture resistant", {"C3": (29.50, 1), "K2": None, "S1": None}),
    ("131", "Tyre 20x2.4 cargo", {"C3": None, "K2": (36.00, 1), "S1": None}),
    ("132", "Tyre 26x2.0 city", {"C3": None, "K2": None, "S1": (27.00, 1)}),
    ("133", "Inner tube with presta valve", {"C3": (6.20, 1), "K2": (7.40, 1), "S1": (6.20, 1)}),
    ("134", "Front wheel, complete", {"C3": (118.00, 5), "K2": (134.00, 5), "S1": (112.00, 5)}),
    ("140", "Chain, 9-speed", {"C3": (18.00, 1), "K2": (18.00, 1), "S1": None}),
    ("141", "Belt drive, 118 teeth", {"C3": None, "K2": None, "S1": (74.00, 7)}),
    ("142", "Cassette 11-36", {"C3": (39.00, 3), "K2": (39.00, 3), "S1": None}),
    ("143", "Rear derailleur", {"C3": (47.00, 3), "K2": (47.00, 3), "S1": None}),
    ("144", "Internal gear hub, 5-speed", {"C3": None, "K2": None, "S1": (212.00, 10)}),
    ("150", "Front light 70 lux", {"C3": (31.00, 1), "K2": (31.00, 1), "S1": (31.00, 1)}),
    ("151", "Rear light with brake function", {"C3": (19.50, 1), "K2": (19.50, 1), "S1": (19.50, 1)}),
    ("152", "Kickstand, dual leg", {"C3": (27.00, 3), "K2": (49.00, 3), "S1": (27.00, 3)}),
    ("153", "Mudguard set", {"C3": (24.00, 3), "K2": (31.00, 3), "S1": (24.00, 3)}),
    ("154", "Cargo box with lid", {"C3": None, "K2": (245.00, 10), "S1": None}),
    ("155", "Saddle, commuter", {"C3": (32.00, 1), "K2": (32.00, 1), "S1": (35.00, 1)}),
    ("156", "GPS tracker module", {"C3": (84.00, 5), "K2": (84.00, 5), "S1": (84.00, 5)}),
    ("157", "Smart lock with Bluetooth", {"C3": (118.00, 5), "K2": (118.00, 5), "S1": (118.00, 5)}),
    ("160", "Frame, complete with fork", {"C3": (420.00, 20), "K2": (760.00, 25), "S1": (405.00, 20)}),
]

# (code, description, price, unit)
SERVICES = [
    ("900", "Standard safety inspection", 35.00, "per bike"),
    ("901", "Full annual service", 89.00, "per bike"),
    ("902", "Battery health diagnostic", 18.00, "per battery"),
    ("903", "Firmware update, motor and display", 12.00, "per bike"),
    ("904", "Workshop labour", 48.00, "per hour"),
    ("905", "Collection and return within Tarrow", 25.00, "per trip, up to 4 bikes"),
]
