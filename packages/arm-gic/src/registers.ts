/**
 * The GICv3/v4 register map: frame offsets and field positions exactly as FACTS.md §12–14
 * (Linux include/linux/irqchip/arm-gic-v3.h) gives them. Everything that decodes a register
 * uses these names, so a test can check an encoding against the architecture directly.
 */

// ---- INTID space (§12.1) ----
export const SGI_BASE_INTID = 0;
export const PPI_BASE_INTID = 16;
export const SPI_BASE_INTID = 32;
export const SPECIAL_INTID_BASE = 1020;
export const INTID_SPURIOUS = 1023;
export const LPI_BASE_INTID = 8192;
/** The GIC maintenance interrupt (PPI 25), asserted while ICH_HCR.En and some ICH_MISR bit is set. */
export const MAINTENANCE_PPI = 25;
export const VTIMER_PPI = 27;

// ---- Distributor, 64 KiB frame (§12.3) ----
export const GICD_CTLR = 0x0000;
export const GICD_TYPER = 0x0004;
export const GICD_IIDR = 0x0008;
export const GICD_TYPER2 = 0x000c;
export const GICD_SETSPI_NSR = 0x0040;
export const GICD_CLRSPI_NSR = 0x0048;
export const GICD_IGROUPR = 0x0080;
export const GICD_ISENABLER = 0x0100;
export const GICD_ICENABLER = 0x0180;
export const GICD_ISPENDR = 0x0200;
export const GICD_ICPENDR = 0x0280;
export const GICD_ISACTIVER = 0x0300;
export const GICD_ICACTIVER = 0x0380;
export const GICD_IPRIORITYR = 0x0400;
export const GICD_ITARGETSR = 0x0800;
export const GICD_ICFGR = 0x0c00;
export const GICD_IGRPMODR = 0x0d00;
export const GICD_IROUTER = 0x6000;
export const GICD_PIDR2 = 0xffe8;

/** GICD_CTLR, single security state (DS = 1), the view KVM gives a guest. */
export const GICD_CTLR_ENABLE_G0 = 1 << 0;
export const GICD_CTLR_ENABLE_G1 = 1 << 1;
export const GICD_CTLR_ARE = 1 << 4;
export const GICD_CTLR_DS = 1 << 6;
/** GICv4.1: the guest accepts SGIs without an active state (direct vSGIs). */
export const GICD_CTLR_NASSGIREQ = 1 << 8;
export const GICD_CTLR_RWP = 1 << 31;

export const GICD_TYPER_LPIS = 1 << 17;
export const GICD_TYPER_MBIS = 1 << 16;
export const GICD_TYPER2_NASSGICAP = 1 << 8;
/** IROUTER Interrupt_Routing_Mode: 1 = any participating PE (1 of N). */
export const GICD_IROUTER_IRM = 1n << 31n;

// ---- Redistributor (§12.4) ----
export const GICR_RD_FRAME = 0x0000;
export const GICR_SGI_FRAME = 0x10000;
export const GICR_VLPI_FRAME = 0x20000;
/** 128 KiB per redistributor on GICv3, 256 KiB with the VLPI frames (GICv4). */
export const GICR_STRIDE_V3 = 0x20000;
export const GICR_STRIDE_V4 = 0x40000;

export const GICR_CTLR = 0x0000;
export const GICR_IIDR = 0x0004;
export const GICR_TYPER = 0x0008;
export const GICR_WAKER = 0x0014;
export const GICR_SETLPIR = 0x0040;
export const GICR_CLRLPIR = 0x0048;
export const GICR_PROPBASER = 0x0070;
export const GICR_PENDBASER = 0x0078;
export const GICR_INVLPIR = 0x00a0;
export const GICR_INVALLR = 0x00b0;
export const GICR_SYNCR = 0x00c0;
export const GICR_PIDR2 = 0xffe8;

export const GICR_CTLR_ENABLE_LPIS = 1 << 0;
export const GICR_CTLR_RWP = 1 << 3;
export const GICR_TYPER_PLPIS = 1n << 0n;
export const GICR_TYPER_VLPIS = 1n << 1n;
export const GICR_TYPER_DIRECTLPI = 1n << 3n;
export const GICR_TYPER_LAST = 1n << 4n;
export const GICR_WAKER_PROCESSOR_SLEEP = 1 << 1;
export const GICR_WAKER_CHILDREN_ASLEEP = 1 << 2;
export const GICR_PENDBASER_PTZ = 1n << 62n;
/** PROPBASER PA 51:12, PENDBASER PA 51:16. */
export const GICR_PROPBASER_PA_MASK = 0x000f_ffff_ffff_f000n;
export const GICR_PENDBASER_PA_MASK = 0x000f_ffff_ffff_0000n;

/** SGI_base frame offsets (relative to SGI_base). */
export const GICR_IGROUPR0 = 0x0080;
export const GICR_ISENABLER0 = 0x0100;
export const GICR_ICENABLER0 = 0x0180;
export const GICR_ISPENDR0 = 0x0200;
export const GICR_ICPENDR0 = 0x0280;
export const GICR_ISACTIVER0 = 0x0300;
export const GICR_ICACTIVER0 = 0x0380;
export const GICR_IPRIORITYR0 = 0x0400;
export const GICR_ICFGR0 = 0x0c00;
export const GICR_ICFGR1 = 0x0c04;

/** VLPI_base frame offsets (GICv4). */
export const GICR_VPROPBASER = 0x0070;
export const GICR_VPENDBASER = 0x0078;
export const GICR_VSGIR = 0x0080;
export const GICR_VSGIPENDR = 0x0088;
export const GICR_VPENDBASER_VALID = 1n << 63n;
/** IDAI on GICv4.0, DB (doorbell wanted when descheduled) on GICv4.1. */
export const GICR_VPENDBASER_IDAI_DB = 1n << 62n;
export const GICR_VPENDBASER_PENDING_LAST = 1n << 61n;
export const GICR_VPENDBASER_DIRTY = 1n << 60n;
export const GICR_VPENDBASER_4_1_VGRP0EN = 1n << 59n;
export const GICR_VPENDBASER_4_1_VGRP1EN = 1n << 58n;
export const GICR_VPENDBASER_4_1_VPEID_MASK = 0xffffn;
export const GICR_VPENDBASER_PA_MASK = 0x000f_ffff_ffff_0000n;

// ---- LPI configuration table byte (§12.4) ----
export const LPI_PROP_ENABLED = 1 << 0;
export const LPI_PROP_GROUP1 = 1 << 1;
export const LPI_PROP_PRIORITY_MASK = 0xfc;

// ---- ITS (§13.1) ----
export const GITS_CTLR = 0x0000;
export const GITS_IIDR = 0x0004;
export const GITS_TYPER = 0x0008;
export const GITS_CBASER = 0x0080;
export const GITS_CWRITER = 0x0088;
export const GITS_CREADR = 0x0090;
export const GITS_BASER = 0x0100;
export const GITS_PIDR2 = 0xffe8;
export const GITS_TRANSLATER = 0x10040;
export const GITS_SGIR = 0x20020;

export const GITS_CTLR_ENABLED = 1 << 0;
export const GITS_CTLR_QUIESCENT = 1 << 31;
export const GITS_TYPER_PHYSICAL = 1n << 0n;
export const GITS_TYPER_VIRTUAL = 1n << 1n;
export const GITS_TYPER_PTA = 1n << 19n;
export const GITS_TYPER_VMOVP = 1n << 37n;
export const GITS_TYPER_VSGI = 1n << 39n;
export const GITS_TYPER_VMAPP = 1n << 40n;
export const GITS_CBASER_VALID = 1n << 63n;
export const GITS_CBASER_PA_MASK = 0x000f_ffff_ffff_f000n;
/** CWRITER / CREADR Offset field 19:5. */
export const GITS_CMDQ_OFFSET_MASK = 0xfffe0;
export const GITS_CWRITER_RETRY = 1;
export const GITS_CREADR_STALLED = 1;
export const GITS_BASER_VALID = 1n << 63n;
export const GITS_BASER_INDIRECT = 1n << 62n;
export const GITS_BASER_TYPE_SHIFT = 56n;
export const GITS_BASER_ENTRY_SIZE_SHIFT = 48n;
export const GITS_BASER_PAGE_SIZE_SHIFT = 8n;
export const GITS_BASER_TYPE_NONE = 0;
export const GITS_BASER_TYPE_DEVICE = 1;
export const GITS_BASER_TYPE_VCPU = 2;
export const GITS_BASER_TYPE_COLLECTION = 4;
/** Size of one ITS command. */
export const ITS_CMD_SIZE = 32;

// ---- CPU interface system registers (§12.5), op0_op1_CRn_CRm_op2 ----
export const IccSysreg = {
  ICC_IAR1_EL1: 'S3_0_C12_C12_0',
  ICC_EOIR1_EL1: 'S3_0_C12_C12_1',
  ICC_HPPIR1_EL1: 'S3_0_C12_C12_2',
  ICC_BPR1_EL1: 'S3_0_C12_C12_3',
  ICC_CTLR_EL1: 'S3_0_C12_C12_4',
  ICC_SRE_EL1: 'S3_0_C12_C12_5',
  ICC_IGRPEN1_EL1: 'S3_0_C12_C12_7',
  ICC_PMR_EL1: 'S3_0_C4_C6_0',
  ICC_DIR_EL1: 'S3_0_C12_C11_1',
  ICC_RPR_EL1: 'S3_0_C12_C11_3',
  ICC_SGI1R_EL1: 'S3_0_C12_C11_5',
  ICC_AP1R0_EL1: 'S3_0_C12_C9_0',
} as const;
export type IccSysregName = keyof typeof IccSysreg;

export const ICC_CTLR_EOIMODE = 1 << 1;
export const ICC_SGI1R_IRM = 1n << 40n;

// ---- Hypervisor interface (§14.1) ----
export const ICH_HCR_EN = 1 << 0;
export const ICH_HCR_UIE = 1 << 1;
export const ICH_HCR_LRENPIE = 1 << 2;
export const ICH_HCR_NPIE = 1 << 3;
export const ICH_HCR_TDIR = 1 << 14;
export const ICH_HCR_EOICOUNT_SHIFT = 27;
export const ICH_MISR_EOI = 1 << 0;
export const ICH_MISR_U = 1 << 1;
export const ICH_MISR_LRENP = 1 << 2;
export const ICH_MISR_NP = 1 << 3;
export const ICH_LR_VINTID_MASK = 0xffff_ffffn;
export const ICH_LR_PINTID_SHIFT = 32n;
export const ICH_LR_PINTID_MASK = 0x1fffn;
export const ICH_LR_EOI = 1n << 41n;
export const ICH_LR_PRIORITY_SHIFT = 48n;
export const ICH_LR_GROUP = 1n << 60n;
export const ICH_LR_HW = 1n << 61n;
export const ICH_LR_PENDING_BIT = 1n << 62n;
export const ICH_LR_ACTIVE_BIT = 1n << 63n;
/** ICH_VMCR_EL2 fields. */
export const ICH_VMCR_ENG0 = 1 << 0;
export const ICH_VMCR_ENG1 = 1 << 1;
export const ICH_VMCR_EOIM = 1 << 9;
export const ICH_VMCR_BPR1_SHIFT = 18;
export const ICH_VMCR_PMR_SHIFT = 24;

/** Affinity of PE `index` as KVM builds vCPU MPIDRs: Aff0 = 4 bits, Aff1, Aff2 (8 bits each). */
export function peAffinity(index: number): { aff0: number; aff1: number; aff2: number; aff3: number } {
  return { aff0: index & 0xf, aff1: (index >>> 4) & 0xff, aff2: (index >>> 12) & 0xff, aff3: 0 };
}

/** The 32-bit Aff3.Aff2.Aff1.Aff0 value of PE `index` (GICR_TYPER bits 63:32). */
export function peAffinityValue(index: number): number {
  const a = peAffinity(index);
  return ((a.aff3 << 24) | (a.aff2 << 16) | (a.aff1 << 8) | a.aff0) >>> 0;
}
