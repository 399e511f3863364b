NP-2026-0003"d
DorothyAbernathy-Fictional
1958-09-22"416-555-0107*dorothy.a@example.org25555-003-007-DA:en*Y
Dr. Rajiv MenonCPSO"58803*
northpoint2416-555-0131:rmenon@northpoint.example.org2‹Right total knee arthroplasty on 2026-11-09. Please start post-operative rehabilitation; the surgeon clears massage for the thigh and calf.:post_surgical_kneeJJOsteoarthritis both knees; left knee replaced in 2023 with a good outcome.R*Status post right total knee arthroplasty.Z5Home exercises from the hospital, ice, acetaminophen.`hr

northpoint
	riverdaleen(<z
2026-11-20‚MRange of motion above 110 degrees and walking without a cane within 12 weeks.