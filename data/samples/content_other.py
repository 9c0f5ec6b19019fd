"""Text of the smaller Larkspur Mobility documents, as data (rendered by generate.py).

Holds the travel and expense policy (DOCX), the Q3 2024 operations review (PPTX), the rider help
centre page (HTML), the IT security guidelines (Markdown), an incident report (TXT), a depot
announcement e-mail (EML) and two group-restricted documents with their sidecar metadata.
"""

# --------------------------------------------------------------------------- travel & expense (DOCX)
EXPENSE_TITLE = "Travel and Expense Policy"
EXPENSE_BLOCKS = [
    ("h1", "Travel and Expense Policy"),
    ("p", "Owner: Finance (Daniel Reyes, Finance Director). Version 3.0, approved by the executive team on "
          "12 February 2024 and effective from 1 March 2024. This policy applies to all Larkspur Mobility "
          "employees and to contractors whose agreements refer to it."),
    ("h2", "1. Principles"),
    ("p", "Spend company money as if it were your own. Choose the most economical option that gets the job "
          "done safely and on time, and book through the approved channels so that we know where our people "
          "are if something goes wrong. Costs that would have been incurred anyway, such as your normal "
          "commute to your contractual workplace, are not reimbursed."),
    ("h2", "2. Booking travel"),
    ("p", "All flights, rail journeys over £100 and hotels must be booked through the company travel portal, "
          "TravelDesk. Standard class rail is the default. Flights are allowed only for journeys where the "
          "train would take more than five hours each way, and must be economy class. Trips abroad require "
          "written approval from your director before booking."),
    ("p", "Taxis may be used when public transport is unavailable, when carrying heavy equipment, or between "
          "22:00 and 06:00. Employees who ride a Larkspur e-bike for short business journeys within Tarrow do "
          "not pay for the ride; use your staff Larkspur Plus account."),
    ("h2", "3. Hotels and meals"),
    ("p", "Hotel rooms are booked at or below the nightly cap for the city, including breakfast and "
          "excluding taxes. When breakfast is not included, it can be claimed within the daily meal "
          "allowance. The meal allowance covers food and non-alcoholic drinks for a full day away from home; "
          "for trips under ten hours, only the lunch portion of £15 can be claimed."),
    ("table", [
        ["City", "Hotel cap per night", "Daily meal allowance"],
        ["Tarrow (only when working past midnight)", "£120", "£35"],
        ["London", "£210", "£50"],
        ["Manchester", "£140", "£40"],
        ["Edinburgh", "£150", "£40"],
        ["Amsterdam", "€190", "€55"],
        ["Copenhagen", "DKK 1,500", "DKK 420"],
        ["Other UK cities", "£130", "£40"],
    ]),
    ("h2", "4. Mileage"),
    ("p", "When you use your own car for business journeys, Larkspur pays 45p per mile for the first 10,000 "
          "business miles in the tax year and 25p per mile after that. You can add 5p per mile for each "
          "colleague who travels with you on the same business journey. Using your own bicycle for business "
          "journeys is paid at 20p per mile. Your own car must be insured for business use."),
    ("h2", "5. Approvals"),
    ("p", "Expense claims are approved in Spendwise by the claimant's line manager. Larger claims need a "
          "second approval as set out below. Nobody may approve their own expenses or those of their own "
          "manager."),
    ("table", [
        ["Claim value", "Approver"],
        ["Up to £250", "Line manager"],
        ["£250.01 to £1,000", "Line manager and department head"],
        ["£1,000.01 to £5,000", "Line manager and Finance Director"],
        ["Above £5,000", "Line manager and Chief Executive"],
    ]),
    ("h2", "6. Entertaining clients"),
    ("p", "Client entertainment must be approved in advance by your director and is limited to £60 per person, "
          "including drinks, which may be claimed for clients only. Record the names and organisations of all "
          "guests in the claim. Entertaining public officials requires prior approval from the Compliance "
          "team regardless of value."),
    ("h2", "7. What is not reimbursed"),
    ("p", "Larkspur does not reimburse: alcohol for employees, parking or traffic fines, travel insurance "
          "(employees are covered by the company policy), loyalty-scheme fees, lost personal property, upgrades "
          "to first or business class, and costs of partners or family members travelling with you."),
    ("h2", "8. Misuse"),
    ("p", "False or inflated claims are treated as fraud and handled under the disciplinary procedure. "
          "Finance samples 5% of all claims every month for a detailed audit against receipts."),
]

# --------------------------------------------------------------------------- Q3 review (PPTX)
OPS_REVIEW_TITLE = "Q3 2024 Operations Review"
OPS_REVIEW_SLIDES = [
    {"title": "Q3 2024 Operations Review",
     "subtitle": "Larkspur Mobility executive team - presented by Colm Brennan, Director of Operations, 8 October 2024"},
    {"title": "Q3 at a glance",
     "bullets": [
         "1.42 million rides in Q3, up 18% on Q3 2023",
         "Average ride length 14.6 minutes; average distance 3.1 km",
         "Fleet availability 94.1% against a target of 95%",
         "Larkspur Plus subscribers reached 23,750 on 30 September",
         "Net promoter score 41, up from 36 in Q2",
     ]},
    {"title": "Fleet availability",
     "bullets": [
         "Availability missed target in July because of a shortage of brake calipers for the Cargo K2",
         "Workshop backlog peaked at 612 bikes on 19 July and was cleared by 23 August",
         "Average repair turnaround fell from 3.8 days in Q2 to 2.9 days in Q3",
         "Vandalism accounted for 11% of all repairs, mostly broken lights and displays",
     ]},
    {"title": "Battery swap programme",
     "bullets": [
         "Street battery swaps replaced depot charging for 70% of the shared fleet",
         "Swap teams completed 88,400 swaps in Q3 with 14 cargo-bike crews",
         "Batteries with health below 80% are retired to the second-life storage partner, VoltaCycle",
         "Two battery incidents in Q3, both contained in quarantine bins with no injuries",
     ]},
    {"title": "Eastfield depot",
     "bullets": [
         "Eastfield depot opens on 14 October 2024 at 7 Foundry Road",
         "Capacity for 2,000 bikes and 45 workshop technicians",
         "Move of the Cargo K2 workshop from Riverside completes in November",
         "Fit-out came in at £2.35 million, £150,000 under budget",
     ]},
    {"title": "Customer care",
     "bullets": [
         "Median first response time in the app chat fell to 4 minutes",
         "Refund requests down 9% after the new end-of-ride photo check",
         "Top contact reason: parking outside a zone (27% of contacts)",
     ]},
    {"title": "Q4 priorities",
     "bullets": [
         "Restore fleet availability to 95% by 30 November",
         "Launch the Cargo K2 for subscription customers in the Riverside district",
         "Winter readiness: fit puncture-resistant tyres to 3,000 Commuter C3 bikes",
         "Complete the payment gateway certificate monitoring actions from incident INC-2024-0712",
     ]},
]

# --------------------------------------------------------------------------- rider help centre (HTML)
HELP_TITLE = "Larkspur Rider Help Centre"
HELP_SECTIONS = [
    ("Plans and prices", [
        ("p", "You can ride with Larkspur pay as you go or with a plan. All prices include VAT. Minutes are "
              "counted from unlock to the end of the ride, including pauses."),
        ("table", [
            ["Plan", "Price", "What is included"],
            ["Larkspur Go", "£1.00 to unlock, then 18p per minute", "No commitment; pay per ride"],
            ["Larkspur Plus", "£24.99 per month", "Unlimited unlocks; first 45 minutes of every ride included"],
            ["Larkspur Annual", "£249 per year", "Everything in Plus, with 60 minutes per ride included"],
            ["Larkspur Access", "£3 per month", "For holders of a Tarrow concession card; 30 minutes per ride"],
        ]),
        ("p", "Minutes beyond those included in a plan are charged at 12p per minute. You can cancel Larkspur "
              "Plus at any time; it ends at the close of the current monthly period. Annual plans can be "
              "cancelled within 14 days for a full refund."),
    ]),
    ("Parking your bike", [
        ("p", "End your ride inside a parking zone shown in blue in the app, and take the end-of-ride photo "
              "showing the bike upright and locked. Rides ended outside a zone are charged a £10 repositioning "
              "fee. If the app shows that a zone is full, the nearest zone with space is highlighted."),
        ("p", "Bikes must not block pavements, doorways, ramps or tactile paving. Repeated parking offences can "
              "lead to your account being suspended for seven days."),
    ]),
    ("Damage and accidents", [
        ("p", "If a bike is damaged or unsafe, tap Report a problem before or after your ride; you will not be "
              "charged for the ride if you report a fault within the first two minutes. In an accident, make "
              "sure everyone is safe, call the emergency services if anyone is hurt, then call our rider line "
              "on 0330 160 4477."),
        ("p", "Riders are not charged for normal wear and tear. Damage caused deliberately or by misuse is "
              "charged at the cost of repair, up to a maximum of £250."),
    ]),
    ("Refunds and billing", [
        ("p", "Request a refund from the ride history screen within 30 days of the ride. Refunds are returned to "
              "the original payment method within five working days. Ride credit bought in bundles does not "
              "expire while your account is active."),
    ]),
    ("Who can ride", [
        ("p", "You must be 16 or older to ride a Larkspur e-bike and 18 or older to hold an account with a "
              "payment card. Riders aged 16 or 17 need a parent or guardian to add them to a family account. "
              "Helmets are recommended for all riders and can be borrowed free of charge at the Northgate and "
              "Riverside depots."),
    ]),
    ("Lost property", [
        ("p", "Items left in a cargo box or on a bike are taken to the Northgate depot lost property desk, open "
              "Monday to Saturday from 08:00 to 18:00. Items are kept for 28 days."),
    ]),
]

# --------------------------------------------------------------------------- IT security guidelines (MD)
IT_SECURITY_MD = """\
# IT Security Guidelines

Owner: Tomasz Wierzbicki, Head of IT Security. Last reviewed 15 January 2024. These guidelines apply to
every person with a Larkspur account, including contractors, and expand on section 18 of the Employee
Handbook.

## 1. Accounts and passwords

- Every person has one personal single sign-on account. Shared accounts are not allowed, except for the
  depot kiosk accounts, which can only open ShiftBoard and SafeTrack.
- Passwords must be at least 14 characters long. We recommend a passphrase of four or more random words.
- Passwords are not changed on a schedule; you must change yours immediately if you suspect someone else
  knows it.
- Use the company password manager, KeyVault Teams, for any credentials that are not covered by single
  sign-on. Never store passwords in documents, spreadsheets or browser notes.

## 2. Multi-factor authentication

Multi-factor authentication (MFA) is mandatory for all accounts. The approved methods are the Authenticator
app with number matching and FIDO2 security keys. SMS codes are not accepted. Administrators of production
systems must use a hardware security key; two keys are issued to each administrator, one to keep at home.

## 3. Devices

| Device type | Requirement |
|---|---|
| Company laptop | Full-disk encryption, screen lock after 5 minutes, managed by Intune |
| Company phone | Six-digit PIN or biometric unlock, remote wipe enabled |
| Personal phone (email and chat only) | Work profile installed, OS no more than one major version old |
| Depot tablets | Kiosk mode, reset every night at 03:00 |

Security updates must be installed within 14 days of release; critical updates flagged by IT Security
must be installed within 48 hours. Devices that fall behind lose access to company systems automatically
until they are updated.

USB storage devices are blocked on company laptops. To share large files with a partner, use a shared
folder in the document store with an expiry date of no more than 30 days.

## 4. Information classification

Larkspur information has four levels: Public, Internal, Confidential and Restricted. Rider personal data,
payment data and salary information are always Restricted. Restricted information may only be shared with
named people who need it, and never through personal email or messaging apps.

## 5. Reporting incidents

Report anything suspicious straight away: a phishing email, a lost device, a strange pop-up, or an
unexpected MFA prompt. Use the Report button in your mail client for phishing, call the service desk on
extension 4400 for lost devices, and email security@larkspur.example for anything else. The security
on-call engineer responds to high-severity reports within 30 minutes, around the clock.

## 6. Access reviews

Managers review the access rights of their team every quarter in the access portal. Access that is not
confirmed within 10 working days of the review request is removed automatically. Leavers' accounts are
disabled at 18:00 on their last working day.
"""

# --------------------------------------------------------------------------- incident report (TXT)
INCIDENT_TXT = """\
LARKSPUR MOBILITY - POST-INCIDENT REVIEW
Incident: INC-2024-0712  Rider app payments outage
Severity: SEV-1
Date of incident: 12 July 2024
Review author: Aoife Mulcahy, Engineering Manager, Platform
Review meeting: 16 July 2024
Status: Actions in progress

SUMMARY
On Friday 12 July 2024 riders could not start rides that required a payment authorisation for 2 hours
and 47 minutes, from 07:52 to 10:39. Riders with an active Larkspur Plus or Annual plan were able to
unlock bikes because their rides do not need a new card authorisation. An estimated 9,300 ride attempts
failed during the outage, at the height of the morning commute.

IMPACT
- 9,300 failed ride attempts, of which about 4,100 were retried successfully after recovery.
- 1,860 contacts to customer care, more than four times a normal Friday morning.
- Estimated lost revenue of £14,200.
- All affected riders received a £3 ride credit on 13 July as an apology.

TIMELINE (all times local)
07:52  Card authorisations start failing with TLS handshake errors.
08:05  Alert fires for payment error rate above 5%; on-call engineer acknowledges at 08:09.
08:40  Incident declared SEV-1; status page updated.
09:25  Root cause identified: expired client certificate for the payment gateway connection.
10:20  Renewed certificate deployed to production.
10:39  Error rate back to normal; incident resolved.

ROOT CAUSE
The client certificate that our payment service presents to the payment gateway, Paycrest, expired at
07:50 on 12 July. The certificate had been issued manually in July 2023 with a one-year validity. Renewal
reminders were sent to the mailbox of an engineer who had left the company in March 2024, so nobody saw
them. Our certificate monitoring covered public web certificates only and did not include client
certificates.

WHAT WENT WELL
- Subscription riders were unaffected, which kept about 60% of the usual morning rides running.
- Customer care published a banner in the app within 20 minutes of the incident being declared.

WHAT WENT BADLY
- It took 1 hour 33 minutes from the first failure to identify the root cause, because the TLS error was
  logged only at debug level.
- The renewal needed a manual request to Paycrest, which added 40 minutes.

ACTIONS
1. Add all client certificates to certificate monitoring with alerts 30 days before expiry.
   Owner: Platform team. Due: 31 August 2024. Status: done.
2. Send certificate expiry notices to a team mailbox instead of a personal one.
   Owner: IT Security. Due: 31 July 2024. Status: done.
3. Move the Paycrest client certificate to automated renewal through the gateway's API.
   Owner: Payments team. Due: 31 October 2024. Status: in progress.
4. Log TLS handshake failures at error level and add them to the payments dashboard.
   Owner: Platform team. Due: 15 August 2024. Status: done.
5. Run a game day simulating an expired certificate in the staging environment.
   Owner: Aoife Mulcahy. Due: 30 November 2024. Status: not started.
"""

# --------------------------------------------------------------------------- depot announcement (EML)
EML_HEADERS = [
    ("From", "Colm Brennan <colm.brennan@larkspur.example>"),
    ("To", "All staff <all-staff@larkspur.example>"),
    ("Subject", "Eastfield depot opens on 14 October - what you need to know"),
    ("Date", "Tue, 01 Oct 2024 09:15:00 +0100"),
    ("Message-ID", "<20241001091500.eastfield@larkspur.example>"),
]
EML_BODY = """\
Hello everyone,

Our third depot, Eastfield, opens on Monday 14 October 2024 at 7 Foundry Road, Tarrow. It is the largest
workshop we have built: space for 2,000 bikes, 45 technician bays, a dedicated battery store and a
training room that the Technician Academy will use from January.

Who moves
- The Cargo K2 workshop team moves from Riverside to Eastfield in two waves: the first on 14 October and
  the second on 4 November.
- The east swap crews will start and end their shifts at Eastfield from 21 October.
- Everyone else stays where they are for now.

Getting there
Eastfield is a ten-minute walk from Foundry Road tram stop (line 3). There are 60 staff parking spaces,
which are allocated to van drivers and colleagues with a blue badge first. A free staff shuttle will run
every 20 minutes between Riverside depot and Eastfield from 06:00 to 22:30 during the first three months.
Of course, staff Larkspur Plus accounts work here too: the depot has a 40-bike staff parking zone.

Access
Your existing access card will open Eastfield from 14 October if you are on the move list. Anyone
else visiting for the first time needs to complete the Eastfield site induction, which takes 45 minutes
and runs every weekday at 08:00 and 14:30 for the first four weeks.

Opening event
Please join us for the opening on Thursday 17 October at 16:00, with a tour of the workshop and food from
the Foundry Road market traders.

Thank you to the facilities team, and especially to Ines Carvalho, who led the fit-out.

Colm Brennan
Director of Operations
Larkspur Mobility
"""

# --------------------------------------------------------------------------- restricted documents
BUDGET_TITLE = "FY2025 Budget Summary"
BUDGET_META = {
    "title": "FY2025 Budget Summary (Board draft)",
    "url": "https://intranet.larkspur.example/finance/budget/fy2025-summary",
    "groups": ["finance", "leadership"],
    "classification": "Restricted",
    "owner": "Daniel Reyes",
}
BUDGET_PARAGRAPHS = [
    "This summary of the FY2025 budget was prepared by Finance for the board meeting of 3 December 2024. "
    "The financial year runs from 1 April 2025 to 31 March 2026. Figures are in millions of pounds.",
    "Revenue is budgeted at £46.8 million, up 21% on the FY2024 forecast, driven by subscription growth "
    "and the launch of the Cargo K2 for subscribers. Operating expenses are budgeted at £38.6 million.",
    "Capital expenditure of £9.2 million is planned, of which £6.1 million is for 1,500 replacement e-bikes "
    "for the shared fleet and £1.4 million for the second phase of the Eastfield depot.",
    "Headcount is planned to grow from 412 to 455 by March 2026, mostly workshop technicians and swap crews.",
]
BUDGET_TABLE = [
    ["Line", "FY2024 forecast", "FY2025 budget"],
    ["Ride and subscription revenue", "37.2", "45.1"],
    ["Fleet Care partner revenue", "1.5", "1.7"],
    ["Staff costs", "19.8", "22.4"],
    ["Fleet maintenance and parts", "6.9", "7.6"],
    ["Energy and battery swaps", "3.1", "3.5"],
    ["Depots and facilities", "3.0", "3.4"],
    ["Technology", "1.6", "1.7"],
    ["Operating profit", "4.3", "8.2"],
]

REORG_META = {
    "title": "Customer care restructuring proposal 2025",
    "url": "https://intranet.larkspur.example/people/proposals/customer-care-2025",
    "groups": ["hr", "leadership"],
    "classification": "Restricted",
}
REORG_MD = """\
# Customer care restructuring proposal 2025

Prepared by Priya Raman, Head of People, for the executive team. Status: draft for consultation.

## Proposal

Customer care currently has 58 advisers in three teams organised by channel (phone, app chat, email).
We propose to reorganise into two teams organised by rider type, Shared riders and Subscribers, from
1 April 2025. No reduction in headcount is proposed.

## Changes for advisers

- Every adviser is trained on all channels by 31 March 2025.
- The evening shift is extended to 23:00 on Fridays and Saturdays, with a 15% evening premium.
- Two new team lead roles are created at grade C4.

## Consultation

Collective consultation with the employee forum starts on 13 January 2025 and runs for 30 days.
"""

HANDBOOK_META = {
    "title": "Employee Handbook (version 4.2)",
    "url": "https://intranet.larkspur.example/people/handbook",
    "owner": "People team",
}
