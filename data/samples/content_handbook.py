"""Text of the Larkspur Mobility employee handbook, as data (rendered by generate.py).

Each section is a dict with a ``title`` and a list of ``blocks``: ``("p", text)`` paragraphs,
``("h", text)`` sub-headings, ``("bullets", [text, ...])`` lists and ``("table", [[cell, ...], ...])``
tables whose first row is the header; ``new_page`` starts a part of the handbook on a new page. A ``~`` inside a word marks a permitted hyphenation point
(rendered as a soft hyphen), so a few words break across lines the way real handbooks do.
"""

TITLE = "Employee Handbook"
VERSION = "Version 4.2"
EFFECTIVE = "Effective 1 March 2024"
HEADER = "Larkspur Mobility Ltd  |  Employee Handbook  |  Version 4.2"
FOOTER = "Internal - do not distribute outside Larkspur Mobility"

SECTIONS = [
    {
        "new_page": True,
        "title": "1. Welcome to Larkspur Mobility",
        "blocks": [
            ("p", "Larkspur Mobility Ltd was founded in 2016 in Tarrow by Miriam Okafor and Lewis Achterberg "
                  "with a fleet of 150 borrowed bicycles and a single rented garage on Quarry Lane. Today we "
                  "operate a shared and subscription fleet of 6,800 electric bikes across the Tarrow metropolitan "
                  "area, run three maintenance depots (Northgate, Riverside and, from October 2024, Eastfield) and "
                  "employ 412 people in operations, engineering, customer care and support functions."),
            ("p", "This handbook explains how we work together: your contract basics, working time, leave, pay "
                  "and benefits, conduct, safety and the procedures that apply when something goes wrong. It "
                  "applies to all employees on a Larkspur contract. Agency workers and contractors follow the "
                  "terms of their own agreements, but the safety rules in sections 16 and 17 apply to everyone "
                  "who sets foot in a depot."),
            ("p", "The handbook is owned by the People team, led by Priya Raman, Head of People. It is reviewed "
                  "every year in January; this edition replaces version 4.1 of February 2023. Where this "
                  "handbook and your individual contract differ, your contract takes precedence. Questions "
                  "about any section can be sent to people@larkspur.example or raised with your line manager."),
            ("h", "Our values"),
            ("bullets", [
                "Safe by default: nobody rides, lifts or repairs anything they have not been trained for.",
                "Riders first: every decision is tested against the experience of the person on the bike.",
                "Fix it properly: we prefer a durable repair to a quick one, in the workshop and in our systems.",
                "Say it early: problems reported early are cheap; problems hidden are expensive.",
            ]),
        ],
    },
    {
        "title": "2. Employment Basics",
        "blocks": [
            ("p", "Every new employee serves a probationary period of six months. Your manager will hold review "
                  "meetings at the end of months two and four and confirm the outcome in writing before the "
                  "six months end. In exceptional cases the probationary period can be extended once, by up to "
                  "three months, for example after a long absence; the reason for any extension is always given "
                  "in writing."),
            ("h", "Notice periods"),
            ("p", "During probation, either side may end employment with one week of notice. After probation "
                  "the notice periods below apply unless your contract states a longer period. Notice is given "
                  "in writing, by email to your manager with a copy to the People team."),
            ("table", [
                ["Length of service", "Notice you give", "Notice Larkspur gives"],
                ["During probation", "1 week", "1 week"],
                ["Probation to 2 years", "1 month", "1 month"],
                ["2 to 5 years", "1 month", "2 months"],
                ["More than 5 years", "2 months", "1 week per year of service, up to 12 weeks"],
            ]),
            ("p", "Your personal details, bank account, emergency contacts and right-to-work documents are kept "
                  "in PeopleHub, our HR system. You are responsible for keeping them up to date; changes of "
                  "address or bank details must be entered at least five working days before a payroll date to "
                  "take effect that month."),
        ],
    },
    {
        "title": "3. Working Hours",
        "blocks": [
            ("p", "The standard full-time working week at Larkspur is 37.5 hours, excluding unpaid lunch breaks "
                  "of at least 30 minutes. Part-time contracts state their hours individually."),
            ("h", "Office staff"),
            ("p", "Office-based staff work flexibly around core hours of 10:00 to 15:00, Monday to Friday. "
                  "Outside core hours you may start and finish when it suits you and your team, provided "
                  "meetings, rota cover and customer commitments are respected. Time recording is not required "
                  "for office staff, but managers may agree team rules for cover during holidays."),
            ("h", "Depot and field staff"),
            ("p", "Depots run three shifts: the early shift from 06:00 to 14:00, the late shift from 14:00 to "
                  "22:00 and the night shift from 22:00 to 06:00. Night shifts are paid with a premium of 20% on "
                  "the basic hourly rate. Rotas are published in the ShiftBoard app at least 14 days in advance; "
                  "swaps between colleagues are allowed when both agree and the depot supervisor approves the "
                  "swap in the app before the shift starts."),
            ("p", "Nobody may work more than 12 hours in a single day, including overtime, and there must be a "
                  "rest period of at least 11 consecutive hours between two shifts. Supervisors are accountable "
                  "for planning rotas that respect these limits, and the ShiftBoard app will refuse a swap that "
                  "breaks them."),
        ],
    },
    {
        "title": "4. Hybrid and Remote Working",
        "blocks": [
            ("p", "Roles that do not require a physical presence in a depot are hybrid. Hybrid employees may work "
                  "remotely for up to three days per week and are expected in the Quarry Lane office on the "
                  "remaining days, including the team day agreed with their manager. Customer care advisers "
                  "follow the rota set by the care team leads."),
            ("p", "To set up a safe workspace at home, each hybrid employee can claim a one-off home office "
                  "allowance of £350 within their first six months, against receipts, for items such as a desk, "
                  "chair or monitor. Laptops, headsets and docking stations are provided by IT and remain company "
                  "property."),
            ("h", "Working from abroad"),
            ("p", "You may work from another country for up to 20 working days per calendar year, with prior "
                  "written approval from your manager and the People team. The request must be made at least "
                  "four weeks in advance so that tax and data-protection checks can be done. Customer data must "
                  "never be accessed from a country outside the UK and the European Economic Area."),
        ],
    },
    {
        "new_page": True,
        "title": "5. Annual Leave",
        "blocks": [
            ("p", "The leave year runs from 1 January to 31 December. Full-time employees receive 27 days of "
                  "paid annual leave plus the public holidays of the Tarrow region. After every two complete "
                  "years of service you receive one additional day, up to a maximum of 32 days per year. "
                  "Part-time entitlements are calculated pro rata to contracted hours."),
            ("p", "Requests are made in PeopleHub. Leave of more than five consecutive working days must be "
                  "requested at least 10 working days before the first day of leave. Depot managers may limit "
                  "the number of technicians on leave at the same time during the peak season from May to "
                  "September, and will publish those limits by 31 January each year."),
            ("h", "Carry-over"),
            ("p", "Up to five days of unused leave may be carried over into the next leave year and must be used "
                  "by 31 March; days not used by then are lost. Leave that could not be taken because of "
                  "sickness or family leave is carried over in full. Leave is never paid out instead of being "
                  "taken, except for untaken leave on leaving Larkspur."),
            ("p", "Employees may also buy up to five additional days of leave per year through salary sacrifice "
                  "during the benefits window in November. Purchased days must be used in the year they are "
                  "bought and cannot be carried over."),
        ],
    },
    {
        "title": "6. Sickness Absence",
        "blocks": [
            ("p", "If you are unable to work because of illness, tell your line manager by phone by 09:00 on the "
                  "first day of absence or, if you work shifts, at least one hour before your shift starts. A "
                  "message to a colleague or a post in a team chat is not enough. Keep your manager informed "
                  "about how you are and when you expect to return."),
            ("p", "You may self-certify absence of up to seven calendar days by completing the absence form in "
                  "PeopleHub when you return. From the eighth calendar day you must provide a fit note from a "
                  "doctor, and further fit notes for as long as the absence continues."),
            ("h", "Company sick pay"),
            ("p", "After completing probation, employees receive full pay for up to 10 weeks of sickness absence "
                  "in any rolling 12-month period, followed by half pay for a further 10 weeks. During probation "
                  "statutory sick pay applies. Company sick pay may be withheld if the notification rules are "
                  "not followed without a good reason."),
            ("p", "After any absence longer than four weeks, your manager will arrange a return-to-work "
                  "meeting and, where helpful, a referral to our occupational health provider, Meridian Health "
                  "Partners, to agree adjust~ments such as a phased return or temporary light duties."),
        ],
    },
    {
        "title": "7. Family Leave",
        "blocks": [
            ("p", "Larkspur offers enhanced family leave from the first day of employment; there is no "
                  "qualifying period for the enhanced pay below."),
            ("table", [
                ["Type of leave", "Length", "Pay"],
                ["Maternity or adoption leave", "Up to 52 weeks", "18 weeks at full pay, then statutory pay"],
                ["Partner or paternity leave", "6 weeks", "Full pay, taken within 12 months of the birth"],
                ["Shared parental leave", "Up to 50 weeks shared", "Enhanced to match maternity pay"],
                ["Fertility treatment", "Up to 5 days per year", "Full pay"],
                ["Dependant emergencies", "Reasonable time off", "2 days paid per year, then unpaid"],
            ]),
            ("p", "Please tell the People team about planned family leave at least 15 weeks before the expected "
                  "week of childbirth, or within seven days of being matched with a child for adoption, so that "
                  "cover and pay can be arranged. Keeping-in-touch days are paid at your normal daily rate, up "
                  "to 10 days per leave period."),
            ("p", "On return from family leave you may request flexible working. Requests are answered in "
                  "writing within four weeks, and a refusal must name the business reason."),
        ],
    },
    {
        "title": "8. Other Leave",
        "blocks": [
            ("p", "Life does not always fit into annual leave. The following paid leave is available in addition "
                  "to your holiday entitlement and is recorded in PeopleHub under the relevant absence type."),
            ("bullets", [
                "Bereavement leave: up to five days of paid leave on the death of a partner, child, parent or "
                "sibling, and up to two days for other relatives. Longer unpaid leave can be agreed.",
                "Volunteering: two paid volunteering days per year for registered charities or community "
                "projects, agreed with your manager in advance.",
                "Jury service: full pay for up to 10 working days; you claim the court's loss-of-earnings "
                "allowance and pass it to Larkspur through payroll.",
                "Moving home: one day of paid leave once per calendar year.",
                "Reservist training: up to 10 days of paid leave per year for members of the reserve forces.",
            ]),
            ("p", "Requests for unpaid leave or a career break of up to six months are considered once you have "
                  "two years of service. Benefits other than pension continue during unpaid leave of up to one "
                  "month."),
        ],
    },
    {
        "new_page": True,
        "title": "9. Pay and Payroll",
        "blocks": [
            ("p", "Salaries are paid monthly on the 25th day of the month by bank transfer. When the 25th falls on "
                  "a weekend or public holiday, pay is made on the previous working day. Payslips are published "
                  "in PeopleHub two working days before payday."),
            ("h", "Overtime"),
            ("p", "Overtime must be approved in advance by the depot supervisor. Depot and field staff are paid "
                  "overtime at 1.5 times the basic hourly rate for hours worked beyond 40 hours in a week, and "
                  "at double time for any hours worked on a public holiday. Office staff on salaried contracts "
                  "do not receive overtime pay but may take time off in lieu by agreement with their manager."),
            ("h", "Salary reviews"),
            ("p", "Salaries are reviewed once a year, with changes taking effect on 1 April. The review takes "
                  "account of the year-end performance conversation, market data for each role family and the "
                  "salary band of your grade. Salary bands are published to all employees on the intranet."),
            ("p", "If you believe you have been underpaid or overpaid, contact payroll@larkspur.example "
                  "straight away. Overpayments are recovered in agreed instalments over no more than six "
                  "months."),
        ],
    },
    {
        "title": "10. Pension and Benefits",
        "blocks": [
            ("p", "All employees are enrolled in the Larkspur pension plan, administered by Harbourline Pensions. "
                  "You contribute at least 4% of basic salary and Larkspur matches your contribution up to 6% of "
                  "basic salary. Contributions are made by salary sacrifice unless you opt out of sacrifice in "
                  "PeopleHub."),
            ("table", [
                ["Benefit", "What you get", "Eligibility"],
                ["Life assurance", "4 times basic annual salary", "All employees from day one"],
                ["Health cash plan", "Dental, optical and physio refunds up to £600 a year", "After probation"],
                ["Employee assistance", "24-hour confidential counselling line", "All employees and family"],
                ["Cycle to work", "Salary sacrifice for a bike up to £3,000", "After probation"],
                ["Larkspur Plus", "Free subscription, plus 50% off for one household member", "All employees"],
                ["Eye tests", "Free test and £75 towards glasses for screen users", "All employees"],
            ]),
            ("p", "Benefit choices can be changed once a year during the benefits window, which runs from 1 to 21 "
                  "November, or within 30 days of a life event such as marriage, a birth or a house move."),
        ],
    },
    {
        "title": "11. Expenses",
        "blocks": [
            ("p", "Larkspur reimburses reasonable costs that you incur while working on company business. The "
                  "full rules, including hotel caps, meal allowances and mileage rates, are in the Travel and "
                  "Expense Policy. The key points are summarised here."),
            ("bullets", [
                "Submit claims in the Spendwise app with an itemised receipt for every item.",
                "Claims must be submitted within 60 days of the date the cost was incurred; later claims are "
                "only paid with approval from the Finance Director.",
                "Approved claims are paid with the next monthly payroll if approved by the 15th of the month.",
                "Alcohol, fines and personal entertainment are never reimbursed.",
            ]),
            ("p", "Company cards are issued to employees who travel regularly. Card holders must reconcile "
                  "transactions in Spendwise by the 5th working day of the following month; cards with "
                  "unreconciled transactions older than 90 days are suspended automatically."),
        ],
    },
    {
        "new_page": True,
        "title": "12. Learning and Development",
        "blocks": [
            ("p", "Every employee has an annual learning budget of £1,200, which can be spent on courses, "
                  "conferences, books or certifications related to their current or next role. Spending above "
                  "the budget, or on programmes lasting more than six months, needs approval from your director."),
            ("p", "In addition to the budget, employees may take up to five paid study days per year for exams "
                  "and coursework. Larkspur pays the annual membership fee of one professional body that is "
                  "relevant to your role."),
            ("h", "Technician academy"),
            ("p", "New workshop technicians complete the Larkspur Technician Academy, a 12-week programme that "
                  "combines classroom sessions at the Northgate depot with supervised work on the fleet. "
                  "Graduates receive the Level 3 E-bike Maintenance Certificate and move to grade T2. "
                  "Technicians who want to become trainers can apply for the train-the-trainer course after 18 "
                  "months at grade T2."),
            ("p", "If you leave Larkspur within 12 months of completing a course that cost more than £2,000, you may "
                  "be asked to repay a share of the cost, reducing by one twelfth for each full month served. "
                  "This is agreed in writing before the course starts."),
        ],
    },
    {
        "title": "13. Performance Reviews",
        "blocks": [
            ("p", "Performance conversations happen twice a year: a mid-year check-in in September and a "
                  "year-end review in March. Both are recorded in PeopleHub. The year-end review produces a "
                  "rating that feeds into the salary review on 1 April."),
            ("table", [
                ["Rating", "Label", "Meaning"],
                ["5", "Exceptional", "Far exceeded objectives and raised the bar for others"],
                ["4", "Strong", "Exceeded most objectives"],
                ["3", "Solid", "Met objectives; the expected rating for most people"],
                ["2", "Developing", "Met some objectives; a development plan is agreed"],
                ["1", "Not meeting expectations", "A performance improvement plan is started"],
            ]),
            ("p", "Objectives are agreed at the start of the year, no later than 28 February, and should be few "
                  "and specific: three to five objectives is typical. Managers hold monthly one-to-one meetings "
                  "with each direct report; these are the place to adjust objectives when priorities change."),
            ("p", "A performance improvement plan lasts between six and twelve weeks and sets out clear, "
                  "measurable goals and the support that will be given. You may bring a colleague to the "
                  "meetings that open and close the plan."),
        ],
    },
    {
        "new_page": True,
        "title": "14. Code of Conduct and Gifts",
        "blocks": [
            ("p", "We expect everyone at Larkspur to act honestly, treat colleagues, riders and partners with "
                  "respect, and avoid anything that could damage trust in the company. Harassment, bullying and "
                  "discrimination are never acceptable and are treated as potential gross misconduct."),
            ("h", "Gifts and hospitality"),
            ("p", "You may accept modest gifts or hospitality from suppliers or partners with a value of up to "
                  "£50 per occasion. Every gift or hospitality accepted, and every one offered to you and "
                  "declined, must be recorded in the gifts register within five working days. Gifts worth more "
                  "than £50 must be politely declined or, if refusing would cause offence, handed to the "
                  "Compliance team, who will donate them to charity."),
            ("p", "Cash, vouchers and anything offered during a live tender are never accepted, whatever their "
                  "value. Employees involved in procurement must not accept hospitality from a bidder from the "
                  "moment a tender is announced until the contract is signed."),
            ("h", "Social media"),
            ("p", "Only the Communications team speaks for Larkspur on social media. If you mention that you work "
                  "at Larkspur, make clear that your views are your own, and never post photographs taken inside "
                  "a depot or any rider information."),
        ],
    },
    {
        "title": "15. Conflicts of Interest",
        "blocks": [
            ("p", "A conflict of interest arises when your personal interests, or those of people close to you, "
                  "could influence the decisions you make for Larkspur. Having a conflict is not wrong in itself; "
                  "hiding it is. Examples include a family member working for a supplier, a financial stake in a "
                  "competitor, or a second job in the micro-mobility sector."),
            ("p", "All employees complete an annual conflict of interest declaration in PeopleHub by 31 January, "
                  "even if they have nothing to declare. New conflicts must be declared within 10 working days "
                  "of arising. The Compliance team reviews each declaration and agrees any safeguards with you "
                  "and your manager, such as removing you from a supplier selection."),
            ("p", "Second jobs are allowed provided they do not compete with Larkspur, do not use company "
                  "equipment or information, and do not cause you to exceed the working time limits in section "
                  "3. Tell your manager about any second job before you start it."),
            ("p", "Relationships between colleagues are a private matter, except where one person manages the "
                  "other or influences their pay, promotion or rota. Such relationships must be declared to "
                  "the People team in confidence so that reporting lines can be changed."),
        ],
    },
    {
        "new_page": True,
        "title": "16. Health and Safety at Depots",
        "blocks": [
            ("p", "Depots are workshops with heavy equipment, vans and large numbers of lithium-ion batteries. "
                  "Each depot has a named safety lead, at least four trained first aiders per shift and a fire "
                  "marshal rota displayed at the entrance. A safety induction is required before anyone enters "
                  "the workshop floor."),
            ("h", "Personal protective equipment"),
            ("p", "Safety boots and a high-visibility vest must be worn on the workshop floor and in the yard at "
                  "all times. Cut-resistant gloves and safety glasses are required when handling batteries, "
                  "using the wheel truing stands or working with brake fluids. PPE is issued free of charge and "
                  "replaced when worn out."),
            ("h", "Damaged batteries"),
            ("p", "A battery that is swollen, dented, hot to the touch or has been in a crash must be treated as "
                  "damaged. Place it immediately in one of the sand-filled quarantine bins marked in red, log it "
                  "in SafeTrack and inform the shift supervisor. Damaged batteries must be moved from the "
                  "quarantine bin to the fire-rated Battery Store B within two hours. Never charge, open or ship "
                  "a damaged battery."),
            ("h", "Reporting incidents"),
            ("p", "Every accident, near miss and dangerous occurrence must be reported in SafeTrack within 24 "
                  "hours, even if nobody was hurt. The safety lead reviews each report within three working days "
                  "and publishes lessons learned at the monthly depot safety meeting."),
        ],
    },
    {
        "title": "17. Vehicles and Riding",
        "blocks": [
            ("p", "Employees who ride fleet e-bikes for work, including test rides after repairs, must wear a "
                  "helmet and follow the Highway Code. Test rides take place on the marked circuit in the depot "
                  "yard wherever possible; road test rides are limited to a radius of two kilometres from the "
                  "depot."),
            ("h", "Service vans"),
            ("p", "To drive a Larkspur service van you must have held a full driving licence for at least two "
                  "years and pass the company driving assessment. Drivers may drive for no more than nine hours "
                  "in a day and must take a break of at least 30 minutes after four and a half hours of driving. "
                  "Licence checks are run every six months through the licensing authority with your consent."),
            ("p", "Vans are fitted with telematics that record location, speed and harsh braking. The data is "
                  "used for route planning, safety coaching and investigating incidents, and is kept for 90 "
                  "days. Parking and traffic fines incurred through the driver's own fault are the driver's "
                  "responsibility and are recovered through payroll."),
            ("p", "Mobile phones may not be handled while driving, even when stationary in traffic. Navigation "
                  "must be set before departure and calls are taken only through the hands-free system."),
        ],
    },
    {
        "new_page": True,
        "title": "18. Information Security",
        "blocks": [
            ("p", "Our systems hold the personal and payment data of more than 90,000 riders, so every employee "
                  "plays a part in protecting them. The IT Security Guidelines set out the detailed rules; this "
                  "section summarises your main responsibilities."),
            ("bullets", [
                "Use your company single sign-on account and multi-factor authentication for every company "
                "system. Never share passwords or approve a sign-in prompt you did not start.",
                "Lock your screen whenever you leave your device, and never leave a laptop in an unattended "
                "vehicle.",
                "Report suspected phishing with the Report button in your mail client or by forwarding the "
                "message to security@larkspur.example.",
                "Report a lost or stolen laptop or phone to the IT service desk within one hour, at any time of "
                "day, by calling extension 4400.",
                "Install software only from the company self-service portal.",
            ]),
            ("p", "Deliberate or repeated breaches of the security rules are handled under the disciplinary "
                  "procedure. Mistakes reported promptly are treated as a learning opportunity, not a reason for "
                  "blame."),
        ],
    },
    {
        "title": "19. Data Protection and Privacy",
        "blocks": [
            ("p", "Larkspur processes personal data about riders, employees and partners. Our Data Protection "
                  "Officer is Hannah Lindqvist, who can be contacted at privacy@larkspur.example. Access to "
                  "rider accounts is granted by role and every access is logged; you may only look up a rider's "
                  "account when you need to for your work, for example to resolve a support ticket."),
            ("p", "If you become aware that personal data may have been lost, disclosed or altered without "
                  "authorisation, report it to the privacy team within one hour of discovering it. The privacy "
                  "team decides whether the breach must be notified to the regulator, which must happen within "
                  "72 hours of Larkspur becoming aware of it."),
            ("h", "Retention"),
            ("table", [
                ["Record", "Kept for"],
                ["Ride history linked to an account", "24 months after the ride"],
                ["Payment records", "7 years"],
                ["Support tickets", "3 years after closure"],
                ["CCTV recordings at depots", "30 days unless needed for an investigation"],
                ["Unsuccessful job applications", "6 months"],
            ]),
            ("p", "Subject access requests from riders or employees are forwarded to the privacy team on the day "
                  "they are received; Larkspur must respond within one month."),
        ],
    },
    {
        "new_page": True,
        "title": "20. Grievance Procedure",
        "blocks": [
            ("p", "If you have a concern about your work, your working conditions or the way you are treated, "
                  "please raise it informally with your line manager first. Many issues can be resolved quickly "
                  "in a conversation. If your concern is about your line manager, speak to their manager or to "
                  "the People team instead."),
            ("p", "If the informal route does not resolve matters, you may raise a formal grievance in writing to "
                  "the People team. A formal grievance should be raised within 20 working days of the events it "
                  "concerns or of the end of the informal attempt. A grievance meeting will be held within 10 "
                  "working days of receiving it, and you may be accompanied by a colleague or a trade union "
                  "representative."),
            ("p", "The outcome is confirmed in writing, normally within five working days of the meeting. If you "
                  "are not satisfied, you may appeal in writing within five working days of receiving the "
                  "outcome; the appeal is heard by a manager who was not involved in the original decision."),
            ("p", "Collective grievances raised by three or more employees about the same issue may be heard "
                  "together, and the employee forum representatives may attend."),
        ],
    },
    {
        "title": "21. Disciplinary Procedure",
        "blocks": [
            ("p", "The disciplinary procedure is used when conduct or behaviour falls below the standards in this "
                  "handbook. It is meant to correct, not to punish. Before any formal action, the facts are "
                  "established through an investigation carried out by someone other than the manager who will "
                  "make the decision."),
            ("table", [
                ["Stage", "Remains on file for"],
                ["Verbal reminder (informal)", "Not recorded as a warning"],
                ["First written warning", "6 months"],
                ["Final written warning", "12 months"],
                ["Dismissal", "Not applicable"],
            ]),
            ("p", "Gross misconduct can lead to dismissal without notice, even for a first offence. Examples "
                  "include theft or fraud, violence, working under the influence of alcohol or drugs, serious "
                  "breaches of the safety rules, deliberate damage to fleet or property, and the unauthorised "
                  "disclosure of rider data."),
            ("p", "You have the right to be accompanied at any disciplinary hearing and to appeal against any "
                  "warning or dismissal within five working days of receiving the decision in writing."),
        ],
    },
    {
        "title": "22. Speaking Up (Whistleblowing)",
        "blocks": [
            ("p", "If you suspect wrongdoing at Larkspur, such as fraud, bribery, a danger to health and safety, "
                  "or a cover-up, we want to hear about it. You can raise concerns with your manager, the "
                  "Compliance team or any member of the executive team."),
            ("p", "If you prefer to stay anonymous, use the independent ClearVoice line, which is run by an "
                  "external provider and is available 24 hours a day on 0800 014 2290 or through its website. "
                  "ClearVoice passes reports to the Chair of the Audit Committee without revealing who made "
                  "them unless you agree."),
            ("p", "Nobody will suffer any detriment for raising a genuine concern in good faith, even if it turns "
                  "out to be mistaken. Retaliation against someone who has spoken up is itself gross "
                  "misconduct."),
            ("p", "Concerns are acknowledged within five working days. The Audit Committee receives a summary "
                  "of all concerns and their outcomes every quarter."),
        ],
    },
    {
        "new_page": True,
        "title": "23. Leaving Larkspur",
        "blocks": [
            ("p", "When you leave, your manager and the People team will agree your last working day and any "
                  "handover. All company equipment, including laptops, phones, access cards, PPE and tools, must "
                  "be returned within five working days of your last day. The cost of unreturned equipment may "
                  "be deducted from your final pay."),
            ("p", "Untaken annual leave is paid in your final salary; leave taken in excess of your pro-rata "
                  "entitlement is deducted. Your final payslip and P45 are issued on the next payroll date "
                  "after you leave."),
            ("p", "Every leaver is invited to an exit interview with the People team; the notes are anonymised "
                  "and used to improve how we work. References are provided only by the People team and confirm "
                  "your dates of employment and job title."),
            ("p", "Former employees may rejoin Larkspur; if you return within 12 months, your previous service "
                  "counts towards leave entitlement and notice periods."),
        ],
    },
    {
        "title": "24. Useful Contacts",
        "blocks": [
            ("p", "The table below lists the teams you are most likely to need. Internal extensions can be dialled "
                  "from any depot phone or through the softphone app."),
            ("table", [
                ["Team", "Contact", "Extension"],
                ["People team", "people@larkspur.example", "4100"],
                ["Payroll", "payroll@larkspur.example", "4120"],
                ["IT service desk", "servicedesk@larkspur.example", "4400"],
                ["Security incidents", "security@larkspur.example", "4444"],
                ["Privacy team", "privacy@larkspur.example", "4180"],
                ["Compliance", "compliance@larkspur.example", "4190"],
                ["Northgate depot safety lead", "Olusegun Adeyemi", "5210"],
                ["Riverside depot safety lead", "Ines Carvalho", "5310"],
            ]),
            ("p", "In an emergency at a depot, call the emergency services first, then the shift supervisor."),
        ],
    },
]
