//! The VFS itself: the default VFS's functions, with files that wrap the default VFS's files.
//!
//! A file opened here is laid out as `ShimFile` followed by the default VFS's own file
//! structure (`szOsFile` bytes), which every forwarded call receives. Only files opened with
//! `SQLITE_OPEN_WAL` get a [`WalRun`]; the others forward every call unchanged.

use std::ffi::{c_int, c_void};
use std::mem::size_of;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use rusqlite::ffi;

use crate::wal::WalRun;
use crate::{VfsError, VFS_NAME_C};

/// The default VFS this one forwards to, set once by [`register`].
static INNER: AtomicPtr<ffi::sqlite3_vfs> = AtomicPtr::new(ptr::null_mut());

/// The head of every file this VFS opens; the default VFS's file follows it.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    /// `Box<WalRun>` for a WAL file, null otherwise.
    wal: *mut WalRun,
}

/// Registers the VFS under [`crate::VFS_NAME`] (not as the default).
pub(crate) fn register() -> Result<(), VfsError> {
    // SAFETY: `sqlite3_vfs_find(NULL)` answers the default VFS, which SQLite keeps alive for
    // the life of the process; registering a leaked (never freed) struct is what SQLite asks.
    unsafe {
        let inner = ffi::sqlite3_vfs_find(ptr::null());
        if inner.is_null() {
            return Err(VfsError::NoDefault);
        }
        INNER.store(inner, Ordering::Release);
        let mut vfs = *inner;
        vfs.zName = VFS_NAME_C.as_ptr();
        vfs.pNext = ptr::null_mut();
        vfs.szOsFile = (*inner).szOsFile + size_of::<ShimFile>() as c_int;
        vfs.xOpen = Some(open);
        // Every other function is the default VFS's own, called with this struct, whose
        // `pAppData` is the default one's too.
        let rc = ffi::sqlite3_vfs_register(Box::into_raw(Box::new(vfs)), 0);
        if rc != ffi::SQLITE_OK {
            return Err(VfsError::Register(rc));
        }
    }
    Ok(())
}

/// The default VFS's file inside `file`.
///
/// # Safety
/// `file` was allocated by SQLite with this VFS's `szOsFile`.
unsafe fn inner(file: *mut ffi::sqlite3_file) -> *mut ffi::sqlite3_file {
    file.cast::<u8>().add(size_of::<ShimFile>()).cast()
}

/// The default VFS's methods for the file inside `file`.
///
/// # Safety
/// `file` is open (its inner file's `pMethods` is set).
unsafe fn methods(file: *mut ffi::sqlite3_file) -> &'static ffi::sqlite3_io_methods {
    &*(*inner(file)).pMethods
}

/// The default VFS's methods for `file` if they are of `version` or later (the shared-memory
/// methods came with version 2, the memory-map ones with 3).
///
/// # Safety
/// `file` is open.
unsafe fn methods_since(
    file: *mut ffi::sqlite3_file,
    version: c_int,
) -> Option<&'static ffi::sqlite3_io_methods> {
    Some(methods(file)).filter(|m| m.iVersion >= version)
}

/// The WAL run of `file`, if it is a WAL file.
///
/// # Safety
/// `file` is open; SQLite never calls two methods of one file at once.
unsafe fn wal<'a>(file: *mut ffi::sqlite3_file) -> Option<&'a mut WalRun> {
    (*file.cast::<ShimFile>()).wal.as_mut()
}

/// Writes `file`'s gathered frames, if any.
///
/// # Safety
/// `file` is open.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    match wal(file) {
        Some(run) => run.flush(&mut |data, offset| write_inner(file, data, offset)),
        None => ffi::SQLITE_OK,
    }
}

/// Writes `file`'s gathered frames, then makes `call` (a sync, truncate, size query or fetch,
/// which must see them); a failed write is answered instead.
///
/// # Safety
/// `file` is open.
unsafe fn after_flush(file: *mut ffi::sqlite3_file, call: impl FnOnce() -> c_int) -> c_int {
    match flush(file) {
        ffi::SQLITE_OK => call(),
        failed => failed,
    }
}

/// # Safety
/// `file` is open.
unsafe fn write_inner(file: *mut ffi::sqlite3_file, data: &[u8], offset: i64) -> c_int {
    let Ok(len) = c_int::try_from(data.len()) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    match methods(file).xWrite {
        Some(write) => write(inner(file), data.as_ptr().cast(), len, offset),
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let shim = file.cast::<ShimFile>();
    (*shim).base.pMethods = ptr::null();
    (*shim).wal = ptr::null_mut();
    let default = INNER.load(Ordering::Acquire);
    let inner_file = inner(file);
    (*inner_file).pMethods = ptr::null();
    let Some(open_inner) = (*default).xOpen else {
        return ffi::SQLITE_CANTOPEN;
    };
    let rc = open_inner(default, name, inner_file, flags, out_flags);
    if rc != ffi::SQLITE_OK {
        // SQLite will not close a file whose open failed (ours has no methods): close the
        // inner one if it was left open.
        if let Some(close_inner) = (*inner_file).pMethods.as_ref().and_then(|m| m.xClose) {
            close_inner(inner_file);
        }
        return rc;
    }
    if flags & ffi::SQLITE_OPEN_WAL != 0 {
        (*shim).wal = Box::into_raw(Box::<WalRun>::default());
    }
    (*shim).base.pMethods = &METHODS;
    ffi::SQLITE_OK
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    let flushed = flush(file);
    let shim = file.cast::<ShimFile>();
    if !(*shim).wal.is_null() {
        drop(Box::from_raw((*shim).wal));
        (*shim).wal = ptr::null_mut();
    }
    let closed = methods(file)
        .xClose
        .map_or(ffi::SQLITE_OK, |close| close(inner(file)));
    if flushed != ffi::SQLITE_OK {
        flushed
    } else {
        closed
    }
}

unsafe extern "C" fn read(
    file: *mut ffi::sqlite3_file,
    buf: *mut c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let rc = flush(file);
    if rc != ffi::SQLITE_OK {
        return ffi::SQLITE_IOERR_READ;
    }
    match methods(file).xRead {
        Some(read) => read(inner(file), buf, amount, offset),
        None => ffi::SQLITE_IOERR_READ,
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    buf: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    let Some(run) = wal(file) else {
        return match methods(file).xWrite {
            Some(write) => write(inner(file), buf, amount, offset),
            None => ffi::SQLITE_IOERR_WRITE,
        };
    };
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    // SAFETY: SQLite passes `amount` readable bytes at `buf` for the duration of the call.
    let data = std::slice::from_raw_parts(buf.cast::<u8>(), len);
    run.write(data, offset, &mut |data, offset| {
        write_inner(file, data, offset)
    })
}

unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: ffi::sqlite3_int64) -> c_int {
    after_flush(file, || {
        if let Some(run) = wal(file) {
            run.forget_end();
        }
        methods(file)
            .xTruncate
            .map_or(ffi::SQLITE_IOERR_TRUNCATE, |f| f(inner(file), size))
    })
}

unsafe extern "C" fn sync(file: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    after_flush(file, || {
        methods(file)
            .xSync
            .map_or(ffi::SQLITE_IOERR_FSYNC, |f| f(inner(file), flags))
    })
}

unsafe extern "C" fn file_size(
    file: *mut ffi::sqlite3_file,
    size: *mut ffi::sqlite3_int64,
) -> c_int {
    after_flush(file, || {
        methods(file)
            .xFileSize
            .map_or(ffi::SQLITE_IOERR_FSTAT, |f| f(inner(file), size))
    })
}

unsafe extern "C" fn lock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    methods(file)
        .xLock
        .map_or(ffi::SQLITE_IOERR_LOCK, |f| f(inner(file), level))
}

unsafe extern "C" fn unlock(file: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    methods(file)
        .xUnlock
        .map_or(ffi::SQLITE_IOERR_UNLOCK, |f| f(inner(file), level))
}

unsafe extern "C" fn check_reserved_lock(file: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    methods(file)
        .xCheckReservedLock
        .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |f| f(inner(file), out))
}

unsafe extern "C" fn file_control(
    file: *mut ffi::sqlite3_file,
    op: c_int,
    arg: *mut c_void,
) -> c_int {
    methods(file)
        .xFileControl
        .map_or(ffi::SQLITE_NOTFOUND, |f| f(inner(file), op, arg))
}

unsafe extern "C" fn sector_size(file: *mut ffi::sqlite3_file) -> c_int {
    methods(file).xSectorSize.map_or(4096, |f| f(inner(file)))
}

unsafe extern "C" fn device_characteristics(file: *mut ffi::sqlite3_file) -> c_int {
    methods(file)
        .xDeviceCharacteristics
        .map_or(0, |f| f(inner(file)))
}

unsafe extern "C" fn shm_map(
    file: *mut ffi::sqlite3_file,
    page: c_int,
    page_size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    methods_since(file, 2)
        .and_then(|m| m.xShmMap)
        .map_or(ffi::SQLITE_IOERR_SHMMAP, |f| {
            f(inner(file), page, page_size, extend, out)
        })
}

unsafe extern "C" fn shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    methods_since(file, 2)
        .and_then(|m| m.xShmLock)
        .map_or(ffi::SQLITE_IOERR_SHMLOCK, |f| {
            f(inner(file), offset, n, flags)
        })
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    if let Some(f) = methods_since(file, 2).and_then(|m| m.xShmBarrier) {
        f(inner(file));
    }
}

unsafe extern "C" fn shm_unmap(file: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    methods_since(file, 2)
        .and_then(|m| m.xShmUnmap)
        .map_or(ffi::SQLITE_OK, |f| f(inner(file), delete))
}

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    after_flush(file, || {
        match methods_since(file, 3).and_then(|m| m.xFetch) {
            Some(f) => f(inner(file), offset, amount, out),
            None => {
                // No memory map: SQLite reads the page instead.
                *out = ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    })
}

unsafe extern "C" fn unfetch(
    file: *mut ffi::sqlite3_file,
    offset: ffi::sqlite3_int64,
    p: *mut c_void,
) -> c_int {
    methods_since(file, 3)
        .and_then(|m| m.xUnfetch)
        .map_or(ffi::SQLITE_OK, |f| f(inner(file), offset, p))
}
