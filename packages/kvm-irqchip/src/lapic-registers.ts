/**
 * xAPIC register offsets and bits (arch/x86/include/asm/apicdef.h) as KVM's LAPIC model and
 * KVM_GET_LAPIC's 1 KiB register page use them (FACTS §7.3).
 */
export const APIC = {
  ID: 0x20,
  LVR: 0x30,
  TASKPRI: 0x80,
  ARBPRI: 0x90,
  PROCPRI: 0xa0,
  EOI: 0xb0,
  RRR: 0xc0,
  LDR: 0xd0,
  DFR: 0xe0,
  SPIV: 0xf0,
  ISR: 0x100,
  TMR: 0x180,
  IRR: 0x200,
  ESR: 0x280,
  LVTCMCI: 0x2f0,
  ICR: 0x300,
  ICR2: 0x310,
  LVTT: 0x320,
  LVTTHMR: 0x330,
  LVTPC: 0x340,
  LVT0: 0x350,
  LVT1: 0x360,
  LVTERR: 0x370,
  TMICT: 0x380,
  TMCCT: 0x390,
  TDCR: 0x3e0,
  SELF_IPI: 0x3f0,
} as const;

/** LAPIC MMIO window: default base and length. */
export const APIC_DEFAULT_PHYS_BASE = 0xfee00000;
export const LAPIC_MMIO_LENGTH = 0x1000;
/** KVM's APIC version (0x14) with 6 LVT entries (MaxLVT = 5): 0x50014, as KVM_GET_LAPIC shows. */
export const KVM_APIC_VERSION = 0x14 | (5 << 16);
export const KVM_APIC_NR_LVT = 6;

export const SPIV_APIC_ENABLED = 0x100;
export const SPIV_DIRECTED_EOI = 0x1000;
export const LVT_MASKED = 0x10000;
export const APIC_DFR_FLAT = 0xffffffff;
export const APIC_DFR_CLUSTER = 0x0fffffff;
/** IA32_APIC_BASE MSR bits. */
export const MSR_IA32_APICBASE = 0x1b;
export const APICBASE_BSP = 0x100;
export const APICBASE_X2APIC = 0x400;
export const APICBASE_ENABLE = 0x800;
export const APICBASE_BASE_MASK = 0xfffff000;

/** Delivery modes (ICR / redirection entry / MSI data bits 10:8). */
export const DM = {
  FIXED: 0,
  LOWEST: 1,
  SMI: 2,
  REMRD: 3,
  NMI: 4,
  INIT: 5,
  STARTUP: 6,
  EXTINT: 7,
} as const;

/** ICR destination shorthands (bits 19:18). */
export const SHORTHAND = { NONE: 0, SELF: 1, ALL_INC: 2, ALL_BUT: 3 } as const;

const LVT_MASK = LVT_MASKED | 0x1000 | 0xff;
const LINT_MASK = LVT_MASK | 0x700 | 0x2000 | 0x4000 | 0x8000;
/** Writable bits of each LVT (apic_lvt_mask[]); the timer adds its mode bits (TSC deadline). */
export const LVT_WRITE_MASK: Readonly<Record<number, number>> = {
  [APIC.LVTT]: LVT_MASK | 0x60000,
  [APIC.LVTTHMR]: LVT_MASK | 0x700,
  [APIC.LVTPC]: LVT_MASK | 0x700,
  [APIC.LVT0]: LINT_MASK,
  [APIC.LVT1]: LINT_MASK,
  [APIC.LVTERR]: LVT_MASK,
};
/** The LVTs KVM resets to masked (all six it implements). */
export const LVT_OFFSETS: readonly number[] = [APIC.LVTT, APIC.LVTTHMR, APIC.LVTPC, APIC.LVT0, APIC.LVT1, APIC.LVTERR];

/** Registers a guest may read (kvm_lapic_readable_reg_mask, xAPIC mode). */
export const READABLE_XAPIC: ReadonlySet<number> = new Set<number>([
  APIC.ID, APIC.LVR, APIC.TASKPRI, APIC.ARBPRI, APIC.PROCPRI, APIC.LDR, APIC.DFR, APIC.SPIV,
  ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((i) => [APIC.ISR + 0x10 * i, APIC.TMR + 0x10 * i, APIC.IRR + 0x10 * i]),
  APIC.ESR, APIC.ICR, APIC.ICR2, APIC.LVTT, APIC.LVTTHMR, APIC.LVTPC, APIC.LVT0, APIC.LVT1, APIC.LVTERR,
  APIC.TMICT, APIC.TMCCT, APIC.TDCR,
]);

/** Register names used by set_lapic in the golden corpus (harness LAPIC_REG_NAMES). */
export const LAPIC_REG_BY_NAME: Readonly<Record<string, number>> = {
  ID: APIC.ID, TPR: APIC.TASKPRI, LDR: APIC.LDR, DFR: APIC.DFR, SPIV: APIC.SPIV, LVT0: APIC.LVT0,
  LVT1: APIC.LVT1, LVTT: APIC.LVTT, LVTERR: APIC.LVTERR, PPR: APIC.PROCPRI, ICR: APIC.ICR, ICR2: APIC.ICR2,
};
