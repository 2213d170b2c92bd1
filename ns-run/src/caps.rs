//! Capabilities reduced to Docker's default set (bounding set, then the process sets).
use std::io;

/// Docker's default capabilities.
pub(crate) const DEFAULT_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    13, // CAP_NET_RAW
    18, // CAP_SYS_CHROOT
    27, // CAP_MKNOD
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// The highest capability number the kernel knows (read before `pivot_root`).
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability outside the default set from the bounding set and clears the
/// ambient set.
pub(crate) fn drop_bounding(last_cap: u32) -> io::Result<()> {
    for cap in 0..=last_cap {
        if DEFAULT_CAPS.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // EINVAL: capability unknown to this kernel.
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capset(mask: [u32; 2], inheritable: [u32; 2]) -> io::Result<()> {
    let mut header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: mask[0],
            permitted: mask[0],
            inheritable: inheritable[0],
        },
        CapData {
            effective: mask[1],
            permitted: mask[1],
            inheritable: inheritable[1],
        },
    ];
    // SAFETY: header and data are valid for the kernel's reads (two CapData for version 3).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            std::ptr::from_mut(&mut header),
            data.as_ptr(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `security.insecure`: every capability still permitted (all the runtime has) becomes
/// effective, inheritable and ambient, so the command keeps them whatever its user (BuildKit
/// grants all five sets).
pub(crate) fn set_all_caps(last_cap: u32) -> io::Result<()> {
    let mut header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are valid for the kernel's writes (two CapData for version 3).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            std::ptr::from_mut(&mut header),
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let mask = [data[0].permitted, data[1].permitted];
    capset(mask, mask)?;
    for cap in 0..=last_cap.min(63) {
        if mask[(cap / 32) as usize] & (1 << (cap % 32)) != 0 {
            // SAFETY: prctl with integer arguments only.
            unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    libc::c_ulong::from(cap),
                    0,
                    0,
                );
            }
        }
    }
    Ok(())
}

/// Sets effective and permitted to the default set (inheritable empty, as Docker since
/// CVE-2022-24769).
pub(crate) fn set_default_caps() -> io::Result<()> {
    let mut mask = [0u32; 2];
    for &c in DEFAULT_CAPS {
        mask[(c / 32) as usize] |= 1 << (c % 32);
    }
    capset(mask, [0, 0])
}
